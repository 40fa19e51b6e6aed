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

// clockSlot is the width of one slot of the clock's wheel.
const clockSlot = 5 * time.Millisecond

// clock is a timer wheel shared by every running run actor (one timer
// goroutine, not one timer per run). Its period (an actor's time between
// ticks) is cut into slots of clockSlot; each actor joins the slot with the
// fewest actors and is ticked when that slot comes round, once per period.
// A period's actors are so spread over it instead of all woken at once
// (10,000 actors ticked together take longer than a step may be late),
// and an actor paces its steps from its slot's time (add returns it), so
// a tick arrives when a step falls due, not up to a period after.
type clock struct {
	root   *actor.RootContext
	period time.Duration
	epoch  time.Time // slot i comes round at epoch + k·period + i·clockSlot

	mu    sync.Mutex
	slots []map[*actor.PID]*tick
	where map[*actor.PID]int
	turn  int64 // the next slot to come round, at epoch + turn·width

	stop chan struct{}
	done chan struct{}
}

func newClock(root *actor.RootContext, period time.Duration) *clock {
	n := max(int(period/clockSlot), 1)
	c := &clock{root: root, period: period, epoch: time.Now(), slots: make([]map[*actor.PID]*tick, n),
		where: map[*actor.PID]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	for i := range c.slots {
		c.slots[i] = map[*actor.PID]*tick{}
	}
	go c.run()
	return c
}

// width is the wall time between two slots.
func (c *clock) width() time.Duration { return c.period / time.Duration(len(c.slots)) }

func (c *clock) run() {
	defer close(c.done)
	w := c.width()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			// Every slot whose time has come, oldest first (a late
			// timer catches up; coalescing keeps it to one tick each).
			due := int64(now.Sub(c.epoch) / w)
			c.mu.Lock()
			for ; c.turn <= due; c.turn++ {
				for pid, tk := range c.slots[c.turn%int64(len(c.slots))] {
					if !tk.pending.Swap(true) {
						c.root.Send(pid, tk)
					}
				}
			}
			next := c.epoch.Add(time.Duration(c.turn) * w)
			c.mu.Unlock()
			t.Reset(time.Until(next))
		}
	}
}

// add puts pid on the wheel and returns when its slot next comes round
// (its first tick comes then, or later on a busy node): the actor's steps
// fall due from then on, one period apart.
func (c *clock) add(pid *actor.PID) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.where[pid]
	if !ok {
		s = 0
		for i := range c.slots {
			if len(c.slots[i]) < len(c.slots[s]) {
				s = i
			}
		}
		c.slots[s][pid] = &tick{pending: new(atomic.Bool)}
		c.where[pid] = s
	}
	// The first turn of slot s the wheel has not handled yet.
	n := int64(len(c.slots))
	t := c.turn + (int64(s)-c.turn%n+n)%n
	return c.epoch.Add(time.Duration(t) * c.width())
}

func (c *clock) remove(pid *actor.PID) {
	c.mu.Lock()
	if s, ok := c.where[pid]; ok {
		delete(c.slots[s], pid)
		delete(c.where, pid)
	}
	c.mu.Unlock()
}

// close stops the wheel and waits for its goroutine.
func (c *clock) close() {
	close(c.stop)
	<-c.done
}

// Lateness counts how late paced steps were stepped, in buckets of a
// millisecond up to a second (the last bucket holds everything later).
// A step falls due when its period of wall time has passed since the run
// began pacing (at the time scale); a busy node, a slow append (the actor
// steps nothing while it waits) or a late tick makes it late.
type Lateness struct {
	buckets [1001]atomic.Int64
}

func (l *Lateness) observe(d time.Duration) {
	i := min(max(int(d/time.Millisecond), 0), len(l.buckets)-1)
	l.buckets[i].Add(1)
}

// Reset forgets what was counted.
func (l *Lateness) Reset() {
	for i := range l.buckets {
		l.buckets[i].Store(0)
	}
}

// Count is how many steps were counted.
func (l *Lateness) Count() int64 {
	var n int64
	for i := range l.buckets {
		n += l.buckets[i].Load()
	}
	return n
}

// Quantile returns the lateness below which a fraction q of the counted
// steps fell, to the millisecond (a second or more: one second).
func (l *Lateness) Quantile(q float64) time.Duration {
	n := l.Count()
	if n == 0 {
		return 0
	}
	want := int64(q*float64(n)) + 1
	var seen int64
	for i := range l.buckets {
		if seen += l.buckets[i].Load(); seen >= min(want, n) {
			return time.Duration(i+1) * time.Millisecond
		}
	}
	return time.Second
}

// workers is the dispatcher of the run actors: their mailboxes run on
// long-lived goroutines instead of a new goroutine each time a message
// arrives (protoactor's default). At a time scale every running actor
// gets a tick per control period — 100,000 messages a second for 10,000
// runs, in bursts of a clock slot's actors — and a fresh goroutine per
// tick costs its creation and the growth of its stack to the engine's
// depth (runtime.newproc and copystack: ~9 % of the CPU of 5,000
// real-time runs). A mailbox goes to an idle worker; when none is idle, a
// new worker starts with it (up to maxWorkers, then a goroutine of its
// own as before). Nothing ever waits for a busy worker: a mailbox that
// waits on the store holds up no other (a queue in front of the workers
// did, under a slow disk).
type workers struct {
	work chan func() // unbuffered: taken only by an idle worker
	n    atomic.Int64

	mu     sync.Mutex // orders starting workers with close
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// maxWorkers bounds the workers: about a clock slot's actors at 10,000
// runs (1/20 of them), each a few KiB of stack while idle.
const maxWorkers = 512

func newWorkers() *workers {
	return &workers{work: make(chan func()), stop: make(chan struct{})}
}

// Schedule implements actor.Dispatcher.
func (w *workers) Schedule(fn func()) {
	select {
	case w.work <- fn:
		return
	default:
	}
	if w.n.Load() < maxWorkers {
		w.mu.Lock()
		if !w.closed && w.n.Add(1) <= maxWorkers {
			w.wg.Add(1)
			w.mu.Unlock()
			go w.worker(fn)
			return
		}
		w.mu.Unlock()
	}
	go fn()
}

func (w *workers) worker(fn func()) {
	defer w.wg.Done()
	for {
		fn()
		select {
		case fn = <-w.work:
		case <-w.stop:
			return
		}
	}
}

// Throughput implements actor.Dispatcher: messages a mailbox processes
// before it yields (protoactor's default).
func (w *workers) Throughput() int { return 300 }

// close ends the workers once their mailboxes return; later mailboxes get
// goroutines of their own.
func (w *workers) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	w.wg.Wait()
}
