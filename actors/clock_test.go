package actors

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// A busy actor holds at most one tick: the clock's ticks coalesce instead
// of piling up in its mailbox while it works.
func TestClockTicksCoalesceForABusyActor(t *testing.T) {
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	c := newClock(system.Root, 2*time.Millisecond)
	t.Cleanup(c.close)
	var got atomic.Int64
	release := make(chan struct{})
	pid := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*tick); ok {
			if got.Add(1) == 1 {
				<-release // busy for many clock intervals
			}
			m.done()
		}
	}))
	c.add(pid)
	time.Sleep(20 * time.Millisecond)
	start := got.Load()
	time.Sleep(200 * time.Millisecond) // ~100 intervals while the actor is stuck
	c.remove(pid)
	close(release)
	time.Sleep(50 * time.Millisecond)
	if start != 1 {
		t.Fatalf("ticks taken before the actor got stuck = %d, want 1", start)
	}
	if n := got.Load(); n > 2 {
		t.Errorf("ticks handled after a 200 ms stall = %d, want at most 2 (the stuck one and one coalesced)", n)
	}
}
