package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
)

// SEMI E10 equipment states, as Spectra derives them from run events.
const (
	E10Productive      = "productive"       // a run processes on the tool
	E10Engineering     = "engineering"      // only hardware-in-the-loop runs (injected fault or disturbance) process
	E10Standby         = "standby"          // up, no run processing (idle, or runs paused)
	E10UnscheduledDown = "unscheduled_down" // a fault ended a run; until the next run starts on the tool
	E10ScheduledDown   = "scheduled_down"   // a maintenance window (ToolMaintenanceScheduled) and no run processing
)

// E10Segment is one stretch of a tool's timeline in one state.
type E10Segment struct {
	State string    `json:"state"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// RunIDs are the runs processing (productive, engineering) or the run
	// whose fault took the tool down.
	RunIDs []string `json:"run_ids,omitempty"`
	// MaintenanceIDs are the maintenance windows of a scheduled down.
	MaintenanceIDs []string `json:"maintenance_ids,omitempty"`
}

// E10Timeline is a tool's timeline over a period, its time per state and
// the E10 figures. The segments tile the period exactly: their durations
// add up to Until − Since.
type E10Timeline struct {
	ToolID   string       `json:"tool_id"`
	Since    time.Time    `json:"since"`
	Until    time.Time    `json:"until"`
	Segments []E10Segment `json:"segments"`
	// Seconds per state, and the period's total.
	Seconds      map[string]float64 `json:"seconds"`
	TotalSeconds float64            `json:"total_seconds"`
	// The E10 figures (docs/provenance.md). No non-scheduled time is
	// recorded, so operations time is the whole period, and equipment
	// uptime is productive + engineering + standby.
	//
	// Availability is uptime over the time the tool was scheduled to be
	// up: uptime / (total − scheduled downtime); planned maintenance does
	// not count against it. Uptime is E10 equipment uptime, uptime /
	// total (every downtime counts). Utilisation is E10 operational
	// utilisation: productive / total.
	Availability float64 `json:"availability"`
	Uptime       float64 `json:"uptime"`
	Utilisation  float64 `json:"utilisation"`
}

// ToolOf is the tool a run uses: its recipe's tool_id, or its kind when
// it names none (one tool per kind by default).
func ToolOf(e *events.RunRequested) string {
	if e.ToolID != "" {
		return e.ToolID
	}
	return string(e.Kind)
}

// e10Mark is a change of a tool's state at a time: a run starts or stops
// processing, a fault takes the tool down, a maintenance window opens or
// closes.
type e10Mark struct {
	T     time.Time `json:"t"`
	RunID string    `json:"run,omitempty"`
	What  int       `json:"what"`
	Eng   bool      `json:"eng,omitempty"`
	// Maint is the maintenance window of markMaintStart and markMaintEnd.
	Maint string `json:"maint,omitempty"`
}

const (
	markStart = iota
	markStop
	markFault
	markMaintStart
	markMaintEnd
)

// e10Types are the event types the E10 model reads.
var e10Types = map[string]bool{events.TypeRunRequested: true, events.TypeRunStarted: true, events.TypeRunResumed: true,
	events.TypeRunPaused: true, events.TypeRunCompleted: true, events.TypeRunCancelled: true,
	events.TypeRunRetryScheduled: true, events.TypeRunFailed: true, events.TypeRunRetried: true,
	events.TypeToolMaintenanceScheduled: true}

// Tools is the E10 read model (see E10Timeline): per organisation, the
// tool of each run, and per tool its state changes in time order. A run
// processes from its RunStarted (or RunResumed) to its RunPaused,
// RunCompleted, RunFailed, RunCancelled or RunRetryScheduled; a failed
// run's fault, or a transient fault's retry, takes the tool down until
// the next run starts on it or a maintenance window ends; a
// ToolMaintenanceScheduled window [from, until) is scheduled downtime
// unless a run processes. Times are the records' (store) times and the
// windows' own. Timeline folds a tool's changes over a period per
// request; the model itself is checkpointed like every projection.
type Tools struct {
	mu   sync.RWMutex
	orgs map[string]*toolsOrg
}

type toolsOrg struct {
	Runs  map[string]toolRun   `json:"runs"`  // run → its tool
	Marks map[string][]e10Mark `json:"marks"` // tool → changes, by time, then log order
}

type toolRun struct {
	Tool string `json:"tool"`
	Eng  bool   `json:"eng,omitempty"` // the current job is a hardware-in-the-loop test
}

var _ Projection = (*Tools)(nil)

// NewTools returns an empty E10 model.
func NewTools() *Tools {
	t := &Tools{}
	t.Reset()
	return t
}

// Name implements Projection.
func (t *Tools) Name() string { return "tools" }

// Reset implements Projection.
func (t *Tools) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.orgs = map[string]*toolsOrg{}
}

// Snapshot implements Projection.
func (t *Tools) Snapshot() ([]byte, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return json.Marshal(t.orgs)
}

// Restore implements Projection.
func (t *Tools) Restore(data []byte) error {
	var orgs map[string]*toolsOrg
	if err := json.Unmarshal(data, &orgs); err != nil {
		return fmt.Errorf("restore tools: %w", err)
	}
	if orgs == nil {
		orgs = map[string]*toolsOrg{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.orgs = orgs
	return nil
}

// Wants implements Selective: the E10 types of run and tool streams.
func (t *Tools) Wants(category, baseType string) bool {
	return (category == events.CategoryRun || category == events.CategoryTool) && e10Types[baseType]
}

// Apply implements Projection.
func (t *Tools) Apply(rec events.Record) error {
	if !t.Wants(events.Category(rec.Stream), events.BaseType(rec.Type)) {
		return nil
	}
	return t.applyDecoded(rec, decodedOf(rec))
}

// decodes implements decoder.
func (t *Tools) decodes(_, _ string) bool { return true }

// applyDecoded implements decoder.
func (t *Tools) applyDecoded(rec events.Record, d *decoded) error {
	p, err := d.p, d.err
	if err != nil {
		return nil //nolint:nilerr // a version this node cannot read: as before, skipped
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	org := t.orgs[rec.Metadata.OrgID]
	if org == nil {
		org = &toolsOrg{Runs: map[string]toolRun{}, Marks: map[string][]e10Mark{}}
		t.orgs[rec.Metadata.OrgID] = org
	}
	if e, ok := p.(*events.ToolMaintenanceScheduled); ok {
		if e.Until.After(e.From) {
			org.mark(e.ToolID, e10Mark{T: e.From.UTC(), What: markMaintStart, Maint: e.MaintenanceID})
			org.mark(e.ToolID, e10Mark{T: e.Until.UTC(), What: markMaintEnd, Maint: e.MaintenanceID})
		}
		return nil
	}
	runID := events.StreamID(rec.Stream)
	if e, ok := p.(*events.RunRequested); ok {
		org.Runs[runID] = toolRun{Tool: ToolOf(e), Eng: e.Fault != nil || e.Disturbance != nil}
		return nil
	}
	r, ok := org.Runs[runID]
	if !ok {
		return nil
	}
	m := e10Mark{T: rec.Time, RunID: runID, Eng: r.Eng, What: -1}
	switch e := p.(type) {
	case *events.RunStarted, *events.RunResumed:
		m.What = markStart
	case *events.RunPaused, *events.RunCompleted, *events.RunCancelled:
		m.What = markStop
	case *events.RunRetryScheduled:
		m.What = markFault
	case *events.RunFailed:
		m.What = markStop
		if e.Step > 0 { // a fault while processing, not a refused start
			m.What = markFault
		}
	case *events.RunRetried:
		r.Eng = e.Fault != nil
		org.Runs[runID] = r
	}
	if m.What >= 0 {
		org.mark(r.Tool, m)
	}
	return nil
}

// mark inserts m after every change of the tool at or before its time.
func (o *toolsOrg) mark(tool string, m e10Mark) {
	ms := o.Marks[tool]
	i := sort.Search(len(ms), func(i int) bool { return ms[i].T.After(m.T) })
	o.Marks[tool] = slices.Insert(ms, i, m)
}

// Timeline returns tool toolID's E10 timeline in organisation orgID over
// [since, until).
func (t *Tools) Timeline(ctx context.Context, orgID, toolID string, since, until time.Time) (E10Timeline, error) {
	if err := ctx.Err(); err != nil {
		return E10Timeline{}, err
	}
	t.mu.RLock()
	var marks []e10Mark
	if org := t.orgs[orgID]; org != nil {
		marks = slices.Clone(org.Marks[toolID]) // inserts shift them in place
	}
	t.mu.RUnlock()
	return e10Timeline(marks, toolID, since, until), nil
}

// e10Timeline folds a tool's changes (by time) into its timeline over
// [since, until).
func e10Timeline(marks []e10Mark, toolID string, since, until time.Time) E10Timeline {
	tl := E10Timeline{ToolID: toolID, Since: since, Until: until, Segments: []E10Segment{},
		Seconds: map[string]float64{E10Productive: 0, E10Engineering: 0, E10Standby: 0, E10UnscheduledDown: 0, E10ScheduledDown: 0}}
	if !until.After(since) {
		return tl
	}
	running := map[string]bool{} // run → engineering
	maint := map[string]bool{}   // open maintenance windows
	down := ""                   // the run whose fault took the tool down
	state := func() (string, []string, []string) {
		var prod, engs []string
		for id, e := range running {
			if e {
				engs = append(engs, id)
			} else {
				prod = append(prod, id)
			}
		}
		sort.Strings(prod)
		sort.Strings(engs)
		switch {
		case len(prod) > 0:
			return E10Productive, prod, nil
		case len(engs) > 0:
			return E10Engineering, engs, nil
		case len(maint) > 0:
			ids := make([]string, 0, len(maint))
			for id := range maint {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			return E10ScheduledDown, nil, ids
		case down != "":
			return E10UnscheduledDown, []string{down}, nil
		}
		return E10Standby, nil, nil
	}
	apply := func(m e10Mark) {
		switch m.What {
		case markStart:
			running[m.RunID] = m.Eng
			down = ""
		case markStop:
			delete(running, m.RunID)
		case markFault:
			delete(running, m.RunID)
			down = m.RunID
		case markMaintStart:
			maint[m.Maint] = true
		case markMaintEnd:
			delete(maint, m.Maint)
			if len(maint) == 0 {
				down = "" // the maintenance returned the tool to service
			}
		}
	}
	i := 0
	for ; i < len(marks) && !marks[i].T.After(since); i++ {
		apply(marks[i])
	}
	cur := since
	emit := func(end time.Time) {
		if !end.After(cur) {
			return
		}
		st, ids, maints := state()
		n := len(tl.Segments)
		if n > 0 && tl.Segments[n-1].State == st && slices.Equal(tl.Segments[n-1].RunIDs, ids) &&
			slices.Equal(tl.Segments[n-1].MaintenanceIDs, maints) {
			tl.Segments[n-1].End = end
		} else {
			tl.Segments = append(tl.Segments, E10Segment{State: st, Start: cur, End: end, RunIDs: ids, MaintenanceIDs: maints})
		}
		cur = end
	}
	for ; i < len(marks) && marks[i].T.Before(until); i++ {
		emit(marks[i].T)
		apply(marks[i])
	}
	emit(until)

	var total time.Duration
	per := map[string]time.Duration{}
	for _, s := range tl.Segments {
		d := s.End.Sub(s.Start)
		per[s.State] += d
		total += d
	}
	for st, d := range per {
		tl.Seconds[st] = d.Seconds()
	}
	tl.TotalSeconds = total.Seconds()
	if total > 0 {
		uptime := per[E10Productive] + per[E10Engineering] + per[E10Standby]
		if scheduled := total - per[E10ScheduledDown]; scheduled > 0 {
			tl.Availability = float64(uptime) / float64(scheduled)
		}
		tl.Uptime = float64(uptime) / float64(total)
		tl.Utilisation = float64(per[E10Productive]) / float64(total)
	}
	return tl
}
