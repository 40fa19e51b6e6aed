package actors

import (
	"container/heap"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Scheduler messages (local to a node).
type (
	// enqueue asks for a slot in queue. running = the run already held
	// one before a restart: it is granted at once and counted.
	enqueue struct {
		runID    string
		queue    string
		priority int
		arrival  time.Time
		pid      *actor.PID
		running  bool
	}
	// release gives a run's slot (or its place in the queue) back.
	release struct {
		runID string
		queue string
	}
	// admit tells a run actor it holds a slot.
	admit struct{}
	// expect names runs being woken (after a restart, by the
	// reconciler): no queued run is admitted until each has loaded and
	// said whether it holds a slot, so runs that were running reclaim
	// theirs first.
	expect struct{ runIDs []string }
	// settled: a woken run's actor has loaded and told the scheduler
	// what it needs.
	settled   struct{ runID string }
	expectDue struct{}
)

type waiting struct {
	runID    string
	priority int
	arrival  time.Time
	pid      *actor.PID
}

type waitHeap []*waiting

func (h waitHeap) Len() int { return len(h) }
func (h waitHeap) Less(i, j int) bool {
	if h[i].priority != h[j].priority {
		return h[i].priority > h[j].priority
	}
	if !h[i].arrival.Equal(h[j].arrival) {
		return h[i].arrival.Before(h[j].arrival)
	}
	return h[i].runID < h[j].runID
}
func (h waitHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *waitHeap) Push(x any)   { *h = append(*h, x.(*waiting)) }
func (h *waitHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type queue struct {
	limit   int
	running map[string]*actor.PID
	wait    waitHeap
}

// scheduler admits runs per queue: highest priority first, then arrival,
// never more than the queue's limit at once. A run holds its slot while it
// runs or is paused, and gives it back when it ends or waits for a retry.
type scheduler struct {
	cfg    Config
	queues map[string]*queue

	expecting map[string]time.Time // woken runs not settled yet → when we stop waiting
	due       *time.Timer
}

func newScheduler(cfg Config) *scheduler {
	return &scheduler{cfg: cfg, queues: map[string]*queue{}, expecting: map[string]time.Time{}}
}

// wakeGrace bounds how long admission waits for woken runs that never
// settle (an actor that crashed while loading).
func (c Config) wakeGrace() time.Duration { return 2 * c.StoreTimeout }

func (s *scheduler) queue(name string) *queue {
	q, ok := s.queues[name]
	if !ok {
		q = &queue{limit: s.cfg.limit(name), running: map[string]*actor.PID{}}
		s.queues[name] = q
	}
	return q
}

func (s *scheduler) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *enqueue:
		q := s.queue(m.queue)
		if _, ok := q.running[m.runID]; ok || m.running {
			// A restarted actor reclaims the slot it held.
			q.running[m.runID] = m.pid
			ctx.Send(m.pid, &admit{})
			return
		}
		for _, w := range q.wait {
			if w.runID == m.runID {
				w.pid = m.pid
				return
			}
		}
		heap.Push(&q.wait, &waiting{runID: m.runID, priority: m.priority, arrival: m.arrival, pid: m.pid})
		s.admit(ctx, q)
	case *release:
		q := s.queue(m.queue)
		delete(q.running, m.runID)
		for i, w := range q.wait {
			if w.runID == m.runID {
				heap.Remove(&q.wait, i)
				break
			}
		}
		s.admit(ctx, q)
	case *expect:
		grace := s.cfg.wakeGrace()
		until := time.Now().Add(grace)
		for _, id := range m.runIDs {
			s.expecting[id] = until
		}
		if s.due != nil {
			s.due.Stop()
		}
		self, root := ctx.Self(), ctx.ActorSystem().Root
		s.due = time.AfterFunc(grace, func() { root.Send(self, &expectDue{}) })
	case *settled:
		if _, ok := s.expecting[m.runID]; ok {
			delete(s.expecting, m.runID)
			s.admitAll(ctx)
		}
	case *expectDue:
		now := time.Now()
		for id, until := range s.expecting {
			if !now.Before(until) {
				delete(s.expecting, id)
			}
		}
		s.admitAll(ctx)
	case *actor.Stopping:
		if s.due != nil {
			s.due.Stop()
		}
	}
}

func (s *scheduler) admitAll(ctx actor.Context) {
	names := make([]string, 0, len(s.queues))
	for name := range s.queues {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s.admit(ctx, s.queues[name])
	}
}

func (s *scheduler) admit(ctx actor.Context, q *queue) {
	if len(s.expecting) > 0 {
		return // woken runs may still reclaim slots
	}
	for len(q.running) < q.limit && q.wait.Len() > 0 {
		w := heap.Pop(&q.wait).(*waiting)
		q.running[w.runID] = w.pid
		ctx.Send(w.pid, &admit{})
	}
}
