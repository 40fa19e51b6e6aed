package actors

import (
	"container/heap"
	"maps"
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
		// org is the run's organisation, for fair sharing. When empty,
		// the scheduler uses what Service.Own told it.
		org string
	}
	// release gives a run's slot (or its place in the queue) back.
	release struct {
		runID string
		queue string
	}
	// admit tells a run actor it holds a slot.
	admit struct{}
	// wait tells a run actor its enqueue was not admitted at once: the
	// run waits for a slot (and records that it does).
	wait struct{}
	// expect names runs being woken (after a restart, by the
	// reconciler): no queued run is admitted until each has loaded and
	// said whether it holds a slot, so runs that were running reclaim
	// theirs first.
	expect struct{ runIDs []string }
	// settled: a woken run's actor has loaded and told the scheduler
	// what it needs.
	settled   struct{ runID string }
	expectDue struct{}
	// owner says which organisation a run belongs to (Service.Own), for
	// fair sharing. It may arrive after the run's enqueue.
	owner struct{ runID, org string }
	// weights sets the organisations' fair-share weights.
	weights struct{ w map[string]float64 }
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
	runOrg  map[string]string // running run → its organisation
	orgs    map[string]*share // organisation → its waiting runs and share
}

// share is one organisation's part of a queue.
type share struct {
	wait    waitHeap
	running int
	// vtime is the organisation's virtual time: 1/weight per admission.
	// Among organisations equally far below their share of the slots,
	// the one with the least virtual time goes first (start-time fair
	// queuing), so they take turns in proportion to their weights.
	vtime float64
}

// waiting counts the runs waiting in q.
func (q *queue) waiting() int {
	n := 0
	for _, sh := range q.orgs {
		n += sh.wait.Len()
	}
	return n
}

func (q *queue) share(org string) *share {
	sh, ok := q.orgs[org]
	if !ok {
		sh = &share{}
		q.orgs[org] = sh
	}
	return sh
}

// scheduler admits runs per queue, never more than the queue's limit at
// once, sharing the slots fairly between organisations: a freed slot goes
// to the organisation with waiting runs that holds the fewest slots for
// its weight (ties: the least virtual time, then the name); within an
// organisation, highest priority first, then arrival. A run holds its
// slot while it runs or is paused, and gives it back when it ends or waits
// for a retry. See docs/fab.md.
type scheduler struct {
	cfg    Config
	queues map[string]*queue
	// owners: organisations of runs not enqueued yet; weights: fair-share
	// weights per organisation (default 1).
	owners  map[string]string
	weights Weights

	expecting map[string]time.Time // woken runs not settled yet → when we stop waiting
	due       *time.Timer
}

func newScheduler(cfg Config) *scheduler {
	return &scheduler{cfg: cfg, queues: map[string]*queue{}, expecting: map[string]time.Time{},
		owners: map[string]string{}, weights: Weights{}}
}

// wakeGrace bounds how long admission waits for woken runs that never
// settle (an actor that crashed while loading).
func (c Config) wakeGrace() time.Duration { return 2 * c.StoreTimeout }

func (s *scheduler) queue(name string) *queue {
	q, ok := s.queues[name]
	if !ok {
		q = &queue{limit: s.cfg.limit(name), running: map[string]*actor.PID{}, runOrg: map[string]string{},
			orgs: map[string]*share{}}
		s.queues[name] = q
	}
	return q
}

func (s *scheduler) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *enqueue:
		q := s.queue(m.queue)
		org := m.org
		if org == "" {
			org = s.owners[m.runID]
		}
		if _, ok := q.running[m.runID]; ok || m.running {
			// A restarted actor reclaims the slot it held.
			if _, ok := q.running[m.runID]; !ok {
				q.runOrg[m.runID] = org
				q.share(org).running++
			}
			q.running[m.runID] = m.pid
			ctx.Send(m.pid, &admit{})
			return
		}
		for _, sh := range q.orgs {
			for _, w := range sh.wait {
				if w.runID == m.runID {
					w.pid = m.pid
					ctx.Send(m.pid, &wait{})
					return
				}
			}
		}
		sh := q.share(org)
		if sh.wait.Len() == 0 && sh.running == 0 {
			// An organisation that was idle starts at the current virtual
			// time: idling earns no credit to flood with later.
			sh.vtime = q.startVtime(org)
		}
		heap.Push(&sh.wait, &waiting{runID: m.runID, priority: m.priority, arrival: m.arrival, pid: m.pid})
		s.admit(ctx, q)
		if _, ok := q.running[m.runID]; !ok {
			ctx.Send(m.pid, &wait{})
		}
	case *release:
		q := s.queue(m.queue)
		if _, ok := q.running[m.runID]; ok {
			org := q.runOrg[m.runID]
			q.share(org).running--
			delete(q.running, m.runID)
			delete(q.runOrg, m.runID)
		}
		for _, sh := range q.orgs {
			for i, w := range sh.wait {
				if w.runID == m.runID {
					heap.Remove(&sh.wait, i)
					break
				}
			}
		}
		delete(s.owners, m.runID)
		s.admit(ctx, q)
	case *owner:
		s.own(m.runID, m.org)
		s.admitAll(ctx)
	case *weights:
		s.weights = m.w
		s.admitAll(ctx)
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
	for len(q.running) < q.limit {
		org, sh := s.next(q)
		if sh == nil {
			return
		}
		w := heap.Pop(&sh.wait).(*waiting)
		q.running[w.runID] = w.pid
		q.runOrg[w.runID] = org
		sh.running++
		sh.vtime = s.weights.Charge(org, sh.vtime)
		ctx.Send(w.pid, &admit{})
	}
}

// loads is q's organisations as the fair-share policy sees them
// (fairshare.go), by name.
func (q *queue) loads() []OrgLoad {
	out := make([]OrgLoad, 0, len(q.orgs))
	for org, sh := range q.orgs {
		out = append(out, OrgLoad{Org: org, Waiting: sh.wait.Len(), Running: sh.running, VTime: sh.vtime})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Org < out[j].Org })
	return out
}

// next picks the organisation whose run is admitted next (NextOrg).
func (s *scheduler) next(q *queue) (string, *share) {
	loads := q.loads()
	i := NextOrg(loads, s.weights)
	if i < 0 {
		return "", nil
	}
	return loads[i].Org, q.orgs[loads[i].Org]
}

// startVtime is the virtual time org starts at when it becomes active
// (StartVTime).
func (q *queue) startVtime(org string) float64 {
	return StartVTime(org, q.share(org).vtime, q.loads())
}

// maxOwners bounds the organisations remembered for runs that never
// enqueue here (they finished before their owner message arrived, or run
// on another node).
const maxOwners = 100000

// own records a run's organisation, and moves the run to it if it was
// enqueued before its owner was known.
func (s *scheduler) own(runID, org string) {
	for _, q := range s.queues {
		if prev, ok := q.runOrg[runID]; ok {
			if prev != org {
				q.share(prev).running--
				q.share(org).running++
				q.runOrg[runID] = org
			}
			return
		}
		for from, sh := range q.orgs {
			if from == org {
				continue
			}
			for i, w := range sh.wait {
				if w.runID == runID {
					heap.Remove(&sh.wait, i)
					to := q.share(org)
					if to.wait.Len() == 0 && to.running == 0 {
						to.vtime = q.startVtime(org)
					}
					heap.Push(&to.wait, w)
					return
				}
			}
		}
	}
	if len(s.owners) >= maxOwners {
		clear(s.owners)
	}
	s.owners[runID] = org
}

// Own tells the scheduler which organisation a run belongs to, so queue
// admission can share slots fairly between organisations. Call it for
// each run created (after CreateRun) and each run woken after a restart
// (before Wake); a run whose owner is unknown shares the slots of the
// unnamed organisation "".
func (s *Service) Own(runID, orgID string) {
	s.system.Root.Send(s.scheduler, &owner{runID: runID, org: orgID})
}

// SetWeights sets the organisations' fair-share weights (default 1): an
// organisation of weight 2 gets twice the slots of one of weight 1 when
// both have runs waiting.
func (s *Service) SetWeights(w map[string]float64) {
	s.system.Root.Send(s.scheduler, &weights{w: maps.Clone(w)})
}
