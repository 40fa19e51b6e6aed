package actors

import (
	"container/heap"
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
}

func newScheduler(cfg Config) *scheduler {
	return &scheduler{cfg: cfg, queues: map[string]*queue{}}
}

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
	}
}

func (s *scheduler) admit(ctx actor.Context, q *queue) {
	for len(q.running) < q.limit && q.wait.Len() > 0 {
		w := heap.Pop(&q.wait).(*waiting)
		q.running[w.runID] = w.pid
		ctx.Send(w.pid, &admit{})
	}
}
