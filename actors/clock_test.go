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

// The wheel spreads actors over its slots, and an actor's first tick comes
// no earlier than the time add gave it: steps paced from that time fall
// due as ticks arrive.
func TestClockSpreadsActorsOverSlots(t *testing.T) {
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	c := newClock(system.Root, 4*clockSlot)
	t.Cleanup(c.close)
	var pids []*actor.PID
	var dues []time.Time
	var firsts []chan time.Time
	for range 2 {
		first := make(chan time.Time, 1)
		var once atomic.Bool
		pid := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			if m, ok := ctx.Message().(*tick); ok {
				if !once.Swap(true) {
					first <- time.Now()
				}
				m.done()
			}
		}))
		pids, firsts = append(pids, pid), append(firsts, first)
		dues = append(dues, c.add(pid))
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			c.remove(pid)
		}
	})
	c.mu.Lock()
	n0, n1 := len(c.slots[0]), len(c.slots[1])
	c.mu.Unlock()
	if n0 != 1 || n1 != 1 {
		t.Errorf("actors in the first two slots after two adds = %d, %d; want 1, 1", n0, n1)
	}
	if d := (dues[1].Sub(dues[0]) + c.period) % c.period; d != clockSlot {
		t.Errorf("second actor's due time is %s after the first's (mod the period), want %s", d, clockSlot)
	}
	for i, first := range firsts {
		if at := <-first; at.Before(dues[i]) {
			t.Errorf("actor %d: first tick at %s, before its due time %s", i, at.Format(time.StampMicro), dues[i].Format(time.StampMicro))
		}
	}
}
