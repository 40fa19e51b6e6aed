package projections

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spectra-fab/spectra/events"
)

// SEMI E10 equipment states, as Spectra derives them from run events.
const (
	E10Productive      = "productive"       // a run processes on the tool
	E10Engineering     = "engineering"      // only hardware-in-the-loop runs (injected fault or disturbance) process
	E10Standby         = "standby"          // up, no run processing (idle, or runs paused)
	E10UnscheduledDown = "unscheduled_down" // a fault ended a run; until the next run starts on the tool
	E10ScheduledDown   = "scheduled_down"   // planned maintenance: no run event records it, so never derived yet
)

// E10Segment is one stretch of a tool's timeline in one state.
type E10Segment struct {
	State string    `json:"state"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// RunIDs are the runs processing (productive, engineering) or the run
	// whose fault took the tool down.
	RunIDs []string `json:"run_ids,omitempty"`
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
	// Availability is E10 equipment uptime: (total − scheduled and
	// unscheduled downtime) / total. Utilisation is E10 operational
	// utilisation: productive / total (no non-scheduled time is recorded,
	// so operations time is the total).
	Availability float64 `json:"availability"`
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

type e10Mark struct {
	t     time.Time
	runID string
	what  int // markStart, markStop, markFault
	eng   bool
}

const (
	markStart = iota
	markStop
	markFault
)

// E10 folds run events into a tool's E10 timeline (see E10Timeline): a
// run processes from its RunStarted (or RunResumed) to its RunPaused,
// RunCompleted, RunFailed, RunCancelled or RunRetryScheduled; a failed
// run's fault, or a transient fault's retry, takes the tool down until
// the next run starts on it. Times are the records' (store) times.
func E10(recs []events.Record, toolID string, since, until time.Time) E10Timeline {
	tools := map[string]string{} // run → tool
	eng := map[string]bool{}
	var marks []e10Mark
	for _, rec := range recs {
		if events.Category(rec.Stream) != events.CategoryRun {
			continue
		}
		runID := events.StreamID(rec.Stream)
		p, err := events.Decode(rec)
		if err != nil {
			continue
		}
		if e, ok := p.(*events.RunRequested); ok {
			tools[runID] = ToolOf(e)
			eng[runID] = e.Fault != nil || e.Disturbance != nil
			continue
		}
		if tools[runID] != toolID {
			continue
		}
		m := e10Mark{t: rec.Time, runID: runID, eng: eng[runID], what: -1}
		switch e := p.(type) {
		case *events.RunStarted, *events.RunResumed:
			m.what = markStart
		case *events.RunPaused, *events.RunCompleted, *events.RunCancelled:
			m.what = markStop
		case *events.RunRetryScheduled:
			m.what = markFault
		case *events.RunFailed:
			m.what = markStop
			if e.Step > 0 { // a fault while processing, not a refused start
				m.what = markFault
			}
		case *events.RunRetried:
			eng[runID] = e.Fault != nil
		}
		if m.what >= 0 {
			marks = append(marks, m)
		}
	}
	sort.SliceStable(marks, func(i, j int) bool { return marks[i].t.Before(marks[j].t) })

	tl := E10Timeline{ToolID: toolID, Since: since, Until: until, Segments: []E10Segment{},
		Seconds: map[string]float64{E10Productive: 0, E10Engineering: 0, E10Standby: 0, E10UnscheduledDown: 0, E10ScheduledDown: 0}}
	if !until.After(since) {
		return tl
	}
	running := map[string]bool{} // run → engineering
	down := ""                   // the run whose fault took the tool down
	state := func() (string, []string) {
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
			return E10Productive, prod
		case len(engs) > 0:
			return E10Engineering, engs
		case down != "":
			return E10UnscheduledDown, []string{down}
		}
		return E10Standby, nil
	}
	apply := func(m e10Mark) {
		switch m.what {
		case markStart:
			running[m.runID] = m.eng
			down = ""
		case markStop:
			delete(running, m.runID)
		case markFault:
			delete(running, m.runID)
			down = m.runID
		}
	}
	i := 0
	for ; i < len(marks) && !marks[i].t.After(since); i++ {
		apply(marks[i])
	}
	cur := since
	emit := func(end time.Time) {
		if !end.After(cur) {
			return
		}
		st, ids := state()
		n := len(tl.Segments)
		if n > 0 && tl.Segments[n-1].State == st && equalIDs(tl.Segments[n-1].RunIDs, ids) {
			tl.Segments[n-1].End = end
		} else {
			tl.Segments = append(tl.Segments, E10Segment{State: st, Start: cur, End: end, RunIDs: ids})
		}
		cur = end
	}
	for ; i < len(marks) && marks[i].t.Before(until); i++ {
		emit(marks[i].t)
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
		downtime := per[E10UnscheduledDown] + per[E10ScheduledDown]
		tl.Availability = float64(total-downtime) / float64(total)
		tl.Utilisation = float64(per[E10Productive]) / float64(total)
	}
	return tl
}

func equalIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Tools answers E10 timelines from the event log, folding an
// organisation's run events per request.
type Tools struct {
	Store LogReader
}

// Timeline returns tool toolID's E10 timeline in organisation orgID over
// [since, until).
func (t *Tools) Timeline(ctx context.Context, orgID, toolID string, since, until time.Time) (E10Timeline, error) {
	recs, err := t.Store.ReadAll(ctx, 0, events.Filter{Categories: []string{events.CategoryRun}, OrgID: orgID,
		Types: []string{events.TypeRunRequested, events.TypeRunStarted, events.TypeRunResumed, events.TypeRunPaused,
			events.TypeRunCompleted, events.TypeRunCancelled, events.TypeRunRetryScheduled, events.TypeRunFailed,
			events.TypeRunRetried}}, 0)
	if err != nil {
		return E10Timeline{}, fmt.Errorf("timeline %s: %w", toolID, err)
	}
	return E10(recs, toolID, since, until), nil
}
