package actors

import (
	"context"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Slots is the cluster-wide record of queue slots (cluster mode): which
// runs hold a slot of each queue and which wait for one, kept where every
// node sees it and changed only by compare-and-set, so --queue-limit 2
// means two running per queue across the cluster. Package cluster keeps
// it in a replicated NATS KV bucket.
type Slots interface {
	// Update applies change to the queue's table and stores the result
	// unless another node changed the table meanwhile, in which case it
	// reads it again and repeats. change returns false to store nothing.
	Update(ctx context.Context, queue string, change func(t *SlotTable) bool) (SlotTable, error)
	// Watch calls changed with each queue whose table another node (or
	// this one) changed, until ctx ends.
	Watch(ctx context.Context, changed func(queue string)) error
}

// SlotTable is one queue's slots: the runs holding one, and the runs
// waiting in admission order (priority, then arrival). Organisations share
// the slots by weight as on a single node (scheduler.go): Holders and
// VTime keep what that needs, cluster-wide.
type SlotTable struct {
	Running []string   `json:"running"`
	Waiting []SlotWait `json:"waiting"`
	// Holders names the organisation of each running run (absent: "").
	Holders map[string]string `json:"holders,omitempty"`
	// VTime is each organisation's virtual time in the queue: 1/weight
	// per admission; it breaks ties between organisations equally far
	// below their share.
	VTime map[string]float64 `json:"vtime,omitempty"`
}

// SlotWait is a run waiting for a slot.
type SlotWait struct {
	RunID    string    `json:"run_id"`
	Org      string    `json:"org,omitempty"`
	Priority int       `json:"priority"`
	Arrival  time.Time `json:"arrival"`
}

func (t *SlotTable) running(id string) bool { return slices.Contains(t.Running, id) }

func (t *SlotTable) waiting(id string) int {
	return slices.IndexFunc(t.Waiting, func(w SlotWait) bool { return w.RunID == id })
}

// hold records that id, of organisation org, holds a slot.
func (t *SlotTable) hold(id, org string) bool {
	changed := t.drop(id, false)
	if t.running(id) {
		if t.Holders[id] != org {
			t.setHolder(id, org)
			changed = true
		}
		return changed
	}
	t.Running = append(t.Running, id)
	t.setHolder(id, org)
	return true
}

func (t *SlotTable) setHolder(id, org string) {
	if org == "" {
		delete(t.Holders, id)
		return
	}
	if t.Holders == nil {
		t.Holders = map[string]string{}
	}
	t.Holders[id] = org
}

// wait records that id waits, unless it holds a slot already.
func (t *SlotTable) wait(w SlotWait) bool {
	if t.running(w.RunID) || t.waiting(w.RunID) >= 0 {
		return false
	}
	if !t.active(w.Org) {
		// An organisation that was idle starts at the current virtual
		// time: idling earns no credit to flood with later.
		if v, ok := t.minVTime(w.Org); ok && v > t.VTime[w.Org] {
			t.charge(w.Org, v-t.VTime[w.Org])
		}
	}
	t.Waiting = append(t.Waiting, w)
	slices.SortStableFunc(t.Waiting, func(a, b SlotWait) int {
		switch {
		case a.Priority != b.Priority:
			return b.Priority - a.Priority
		case !a.Arrival.Equal(b.Arrival):
			return a.Arrival.Compare(b.Arrival)
		}
		return compareStrings(a.RunID, b.RunID)
	})
	return true
}

// drop removes id from the waiting list and, if all, from the holders.
func (t *SlotTable) drop(id string, all bool) bool {
	changed := false
	if i := t.waiting(id); i >= 0 {
		t.Waiting = slices.Delete(t.Waiting, i, i+1)
		changed = true
	}
	if all {
		if i := slices.Index(t.Running, id); i >= 0 {
			t.Running = slices.Delete(t.Running, i, i+1)
			delete(t.Holders, id)
			changed = true
		}
	}
	if changed && len(t.Running) == 0 && len(t.Waiting) == 0 {
		t.VTime = nil // nobody is active: no history to keep
	}
	return changed
}

// active reports whether org holds or waits for a slot.
func (t *SlotTable) active(org string) bool {
	for _, id := range t.Running {
		if t.Holders[id] == org {
			return true
		}
	}
	return slices.ContainsFunc(t.Waiting, func(w SlotWait) bool { return w.Org == org })
}

// minVTime is the least virtual time of the organisations other than org
// that are active.
func (t *SlotTable) minVTime(org string) (float64, bool) {
	v, found := 0.0, false
	consider := func(o string) {
		if o != org && (!found || t.VTime[o] < v) {
			v, found = t.VTime[o], true
		}
	}
	for _, id := range t.Running {
		consider(t.Holders[id])
	}
	for _, w := range t.Waiting {
		consider(w.Org)
	}
	return v, found
}

func (t *SlotTable) charge(org string, d float64) {
	if t.VTime == nil {
		t.VTime = map[string]float64{}
	}
	t.VTime[org] += d
}

// next is the index in Waiting of the run admitted next, as on a single
// node: of the organisations with waiting runs, the one holding the fewest
// slots for its weight, then the least virtual time, then the first by
// name; within it, the first waiting (priority, then arrival). -1: none.
func (t *SlotTable) next(weight func(org string) float64) int {
	held := map[string]int{}
	for _, id := range t.Running {
		held[t.Holders[id]]++
	}
	best, bestUse := -1, 0.0
	for i, w := range t.Waiting {
		if best >= 0 && w.Org == t.Waiting[best].Org {
			continue // the organisation's first waiting run stands for it
		}
		use := float64(held[w.Org]) / weight(w.Org)
		if best < 0 {
			best, bestUse = i, use
			continue
		}
		b := t.Waiting[best].Org
		switch {
		case use < bestUse,
			use == bestUse && t.VTime[w.Org] < t.VTime[b],
			use == bestUse && t.VTime[w.Org] == t.VTime[b] && w.Org < b:
			best, bestUse = i, use
		}
	}
	return best
}

// Drop removes a run from the table, holding or waiting.
func (t *SlotTable) Drop(runID string) bool { return t.drop(runID, true) }

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// localRun is a run of this node known to the cluster scheduler.
type localRun struct {
	queue   string
	wait    SlotWait
	pid     *actor.PID
	holding bool
}

// Cluster scheduler messages (local).
type (
	slotsChanged struct{ queue string }
	slotsTick    struct{}
)

// slotsReassert is how often the cluster scheduler puts back what its runs
// hold or wait for (a sweep may have dropped an entry it judged from an
// older view) and retries admission.
const slotsReassert = 2 * time.Second

// clusterScheduler admits the runs of this node against the cluster-wide
// slot tables. It answers the same messages as the scheduler (enqueue,
// release) so run actors are the same in both modes. A queue's head of
// line is admitted by the node that hosts it: a node admits its own
// waiting run only when that run heads the queue's waiting list and the
// queue has a free slot, in one compare-and-set.
type clusterScheduler struct {
	cfg   Config
	slots Slots
	runs  map[string]*localRun
	// weights are the organisations' fair-share weights (SetWeights;
	// default 1). Every node must be given the same.
	weights map[string]float64

	cancel context.CancelFunc
	tick   *time.Ticker
}

func newClusterScheduler(cfg Config, slots Slots) *clusterScheduler {
	return &clusterScheduler{cfg: cfg, slots: slots, runs: map[string]*localRun{}}
}

func (s *clusterScheduler) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
}

func (s *clusterScheduler) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		var wctx context.Context
		wctx, s.cancel = context.WithCancel(context.Background())
		self, root := ctx.Self(), ctx.ActorSystem().Root
		go func() {
			_ = s.slots.Watch(wctx, func(q string) { root.Send(self, &slotsChanged{queue: q}) })
		}()
		s.tick = time.NewTicker(slotsReassert)
		tick := s.tick
		go func() {
			for {
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
					root.Send(self, &slotsTick{})
				}
			}
		}()
	case *actor.Stopping:
		if s.cancel != nil {
			s.cancel()
			s.tick.Stop()
		}
	case *enqueue:
		r := &localRun{queue: m.queue, pid: m.pid, wait: SlotWait{RunID: m.runID, Org: m.org, Priority: m.priority, Arrival: m.arrival}}
		if old, ok := s.runs[m.runID]; ok && old.holding {
			r.holding = true
		}
		s.runs[m.runID] = r
		if m.running {
			// It held its slot when its node died (or its actor
			// restarted), and slots outlive nodes: it carries on at once,
			// without waiting for the slots' bucket, whose leader may
			// have died with the node. The next reassert (slotsReassert)
			// records the hold should the table have lost it.
			r.holding = true
			ctx.Send(m.pid, &admit{})
			return
		}
		sctx, cancel := s.ctx()
		t, err := s.slots.Update(sctx, m.queue, func(t *SlotTable) bool {
			if t.running(m.runID) {
				return t.hold(m.runID, m.org)
			}
			return t.wait(r.wait)
		})
		cancel()
		if err != nil {
			s.cfg.Logger.Warn("queue slots unavailable; will try again", "queue", m.queue, "run_id", m.runID, "err", err)
			return
		}
		if t.running(m.runID) {
			r.holding = true
			ctx.Send(m.pid, &admit{})
			return
		}
		s.admit(ctx, m.queue)
	case *release:
		delete(s.runs, m.runID)
		sctx, cancel := s.ctx()
		_, err := s.slots.Update(sctx, m.queue, func(t *SlotTable) bool { return t.drop(m.runID, true) })
		cancel()
		if err != nil {
			s.cfg.Logger.Warn("release queue slot", "queue", m.queue, "run_id", m.runID, "err", err)
		}
		s.admit(ctx, m.queue)
	case *slotsChanged:
		s.admit(ctx, m.queue)
	case *slotsTick:
		s.reassert(ctx)
	case *weights:
		s.weights = m.w
		s.reassert(ctx)
	case *owner:
		if r, ok := s.runs[m.runID]; ok && r.wait.Org == "" {
			r.wait.Org = m.org // put in the table by the next reassert
		}
	case *expect, *settled, *expectDue:
		// Slots outlive nodes: a woken run finds its slot where it left it.
	}
}

// admit grants free slots of queue to this node's runs at the head of its
// waiting list.
func (s *clusterScheduler) admit(ctx actor.Context, queue string) {
	mine := false
	for _, r := range s.runs {
		if r.queue == queue && !r.holding {
			mine = true
			break
		}
	}
	if !mine {
		return
	}
	limit := s.cfg.limit(queue)
	var granted []string
	sctx, cancel := s.ctx()
	_, err := s.slots.Update(sctx, queue, func(t *SlotTable) bool {
		granted = granted[:0]
		// Runs the table says hold a slot whose grant this node has not
		// delivered (an enqueue that failed, a grant to an activation that
		// stopped): theirs already.
		for id, r := range s.runs {
			if r.queue == queue && !r.holding && t.running(id) {
				granted = append(granted, id)
			}
		}
		held := len(granted)
		for len(t.Running) < limit && len(t.Waiting) > 0 {
			head := t.Waiting[t.next(s.weight)]
			r, ok := s.runs[head.RunID]
			if !ok || r.holding {
				break // another node's run is next
			}
			t.hold(head.RunID, head.Org)
			t.charge(head.Org, 1/s.weight(head.Org))
			granted = append(granted, head.RunID)
		}
		return len(granted) > held
	})
	cancel()
	if err != nil {
		s.cfg.Logger.Warn("admit from queue", "queue", queue, "err", err)
		return
	}
	for _, id := range granted {
		r := s.runs[id]
		r.holding = true
		ctx.Send(r.pid, &admit{})
	}
}

// reassert puts back what this node's runs hold or wait for, then admits.
func (s *clusterScheduler) reassert(ctx actor.Context) {
	queues := map[string][]*localRun{}
	for _, r := range s.runs {
		queues[r.queue] = append(queues[r.queue], r)
	}
	for q, rs := range queues {
		sctx, cancel := s.ctx()
		_, err := s.slots.Update(sctx, q, func(t *SlotTable) bool {
			changed := false
			for _, r := range rs {
				if r.holding {
					changed = t.hold(r.wait.RunID, r.wait.Org) || changed
				} else {
					changed = t.wait(r.wait) || changed
				}
			}
			return changed
		})
		cancel()
		if err == nil {
			s.admit(ctx, q)
		}
	}
}

func (s *clusterScheduler) weight(org string) float64 {
	if w, ok := s.weights[org]; ok && w > 0 {
		return w
	}
	return 1
}
