package actors

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// tick asks a running actor to advance its engine to the wall clock.
type tick struct{}

// clock is one ticker shared by every running run actor: it sends each a
// tick per interval. Sharing halves the CPU of per-actor timers
// (reference/protoactor.md).
type clock struct {
	root     *actor.RootContext
	interval time.Duration

	mu   sync.Mutex
	pids map[*actor.PID]struct{}

	stop chan struct{}
	done chan struct{}
}

func newClock(root *actor.RootContext, interval time.Duration) *clock {
	c := &clock{root: root, interval: interval, pids: map[*actor.PID]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *clock) run() {
	defer close(c.done)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	msg := &tick{}
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			for pid := range c.pids {
				c.root.Send(pid, msg)
			}
			c.mu.Unlock()
		}
	}
}

func (c *clock) add(pid *actor.PID) {
	c.mu.Lock()
	c.pids[pid] = struct{}{}
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
