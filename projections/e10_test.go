package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// e10Log builds records with chosen times.
type e10Log struct {
	t    *testing.T
	recs []events.Record
}

func (l *e10Log) add(stream, org string, at time.Time, p events.Payload) {
	ev, err := events.New(p, events.Metadata{OrgID: org})
	if err != nil {
		l.t.Fatal(err)
	}
	l.recs = append(l.recs, events.Record{ID: ev.ID, Stream: stream, Position: uint64(len(l.recs) + 1),
		Type: ev.Type, Time: at, Data: ev.Data, Metadata: ev.Metadata})
}

func toolsOf(t *testing.T, recs []events.Record) *projections.Tools {
	t.Helper()
	m := projections.NewTools()
	for _, rec := range recs {
		if err := m.Apply(rec); err != nil {
			t.Fatalf("Apply(%s): %v", rec.Type, err)
		}
	}
	return m
}

func timeline(t *testing.T, m *projections.Tools, org, tool string, since, until time.Time) projections.E10Timeline {
	t.Helper()
	tl, err := m.Timeline(context.Background(), org, tool, since, until)
	if err != nil {
		t.Fatalf("Timeline: %v", err)
	}
	return tl
}

// TestE10TimelineAddsUp: a tool with runs, a fault, idle gaps and
// maintenance windows; the timeline tiles the period exactly and the E10
// figures follow their definitions (docs/provenance.md).
func TestE10TimelineAddsUp(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	at := func(min float64) time.Time { return t0.Add(time.Duration(min * float64(time.Minute))) }
	l := &e10Log{t: t}
	add := func(runID string, min float64, p events.Payload) { l.add(events.RunStream(runID), "org-1", at(min), p) }
	req := func(id, tool string, fault *process.Fault) *events.RunRequested {
		return &events.RunRequested{RunID: id, JobID: "j-" + id, Kind: process.KindIon, Recipe: json.RawMessage(`{}`), ToolID: tool, Fault: fault}
	}
	// 08:00–08:10 idle; A runs 10–20; B (other tool) runs 12–30; C runs
	// 25–35, paused 28–30, fails on an interlock at 35; down until D
	// starts at 50; D is a HIL run 50–55 overlapping E 52–60; idle to 70.
	add("A", 5, req("A", "IMP-01", nil))
	add("A", 10, &events.RunStarted{JobID: "j-A"})
	add("A", 20, &events.RunCompleted{JobID: "j-A", Step: 10, Result: json.RawMessage(`{}`)})
	add("B", 11, req("B", "IMP-02", nil))
	add("B", 12, &events.RunStarted{JobID: "j-B"})
	add("B", 30, &events.RunCompleted{JobID: "j-B", Step: 10, Result: json.RawMessage(`{}`)})
	add("C", 24, req("C", "IMP-01", nil))
	add("C", 25, &events.RunStarted{JobID: "j-C"})
	add("C", 28, &events.RunPaused{JobID: "j-C", Step: 30})
	add("C", 30, &events.RunResumed{JobID: "j-C", Step: 30})
	add("C", 35, &events.RunFailed{JobID: "j-C", Step: 60, Error: "interlock"})
	add("D", 40, req("D", "IMP-01", &process.Fault{Kind: process.FaultPermanent, AtProgress: 99}))
	add("D", 50, &events.RunStarted{JobID: "j-D"})
	add("E", 51, req("E", "IMP-01", nil))
	add("E", 52, &events.RunStarted{JobID: "j-E"})
	add("D", 55, &events.RunCancelled{JobID: "j-D", Step: 5})
	add("E", 60, &events.RunCompleted{JobID: "j-E", Step: 10, Result: json.RawMessage(`{}`)})
	runsOnly := append([]events.Record(nil), l.recs...)

	// Maintenance, planned ahead (recorded at 1 and 36 min): W1 18–22
	// overlaps A's end, W2 38–46 falls in C's fault (and repairs it), W3
	// 62–66 in the last idle gap.
	maint := func(id string, rec, from, until float64) {
		l.add(events.ToolStream("org-1", "IMP-01"), "org-1", at(rec), &events.ToolMaintenanceScheduled{MaintenanceID: id,
			OrgID: "org-1", ToolID: "IMP-01", From: at(from), Until: at(until), Reason: "PM"})
	}
	maint("W1", 1, 18, 22)
	maint("W2", 36, 38, 46)
	maint("W3", 1.5, 62, 66)
	sort.SliceStable(l.recs, func(i, j int) bool { return l.recs[i].Time.Before(l.recs[j].Time) })
	for i := range l.recs {
		l.recs[i].Position = uint64(i + 1)
	}

	type seg struct {
		state    string
		from, to float64
	}
	for _, tt := range []struct {
		name      string
		recs      []events.Record
		want      []seg
		seconds   map[string]float64 // minutes
		avail, up float64
	}{
		{"runs, a fault, idle gaps", runsOnly, []seg{
			{projections.E10Standby, 0, 10}, {projections.E10Productive, 10, 20}, {projections.E10Standby, 20, 25},
			{projections.E10Productive, 25, 28}, {projections.E10Standby, 28, 30}, {projections.E10Productive, 30, 35},
			{projections.E10UnscheduledDown, 35, 50}, {projections.E10Engineering, 50, 52}, {projections.E10Productive, 52, 60},
			{projections.E10Standby, 60, 70}},
			map[string]float64{projections.E10Productive: 26, projections.E10Engineering: 2, projections.E10Standby: 27,
				projections.E10UnscheduledDown: 15, projections.E10ScheduledDown: 0},
			55.0 / 70, 55.0 / 70},
		{"and maintenance windows", l.recs, []seg{
			{projections.E10Standby, 0, 10}, {projections.E10Productive, 10, 20}, {projections.E10ScheduledDown, 20, 22},
			{projections.E10Standby, 22, 25}, {projections.E10Productive, 25, 28}, {projections.E10Standby, 28, 30},
			{projections.E10Productive, 30, 35}, {projections.E10UnscheduledDown, 35, 38}, {projections.E10ScheduledDown, 38, 46},
			{projections.E10Standby, 46, 50}, {projections.E10Engineering, 50, 52}, {projections.E10Productive, 52, 60},
			{projections.E10Standby, 60, 62}, {projections.E10ScheduledDown, 62, 66}, {projections.E10Standby, 66, 70}},
			map[string]float64{projections.E10Productive: 26, projections.E10Engineering: 2, projections.E10Standby: 25,
				projections.E10UnscheduledDown: 3, projections.E10ScheduledDown: 14},
			// Availability: uptime 53 of the 56 scheduled minutes;
			// uptime: 53 of 70.
			53.0 / 56, 53.0 / 70},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tl := timeline(t, toolsOf(t, tt.recs), "org-1", "IMP-01", at(0), at(70))
			if len(tl.Segments) != len(tt.want) {
				t.Fatalf("E10 segments = %+v, want %d", tl.Segments, len(tt.want))
			}
			var sum time.Duration
			for i, w := range tt.want {
				s := tl.Segments[i]
				if s.State != w.state || !s.Start.Equal(at(w.from)) || !s.End.Equal(at(w.to)) {
					t.Errorf("segment %d = %s %s–%s, want %s %v–%v min", i, s.State, s.Start.Format("15:04"), s.End.Format("15:04"), w.state, w.from, w.to)
				}
				sum += s.End.Sub(s.Start)
			}
			if sum != 70*time.Minute || tl.TotalSeconds != 4200 {
				t.Errorf("segments add up to %s (total %v s), want exactly 70 min", sum, tl.TotalSeconds)
			}
			var secs float64
			for st, min := range tt.seconds {
				if tl.Seconds[st] != min*60 {
					t.Errorf("Seconds[%s] = %v, want %v min", st, tl.Seconds[st], min)
				}
				secs += tl.Seconds[st]
			}
			if secs != tl.TotalSeconds {
				t.Errorf("seconds per state add up to %v, want %v", secs, tl.TotalSeconds)
			}
			if tl.Availability != tt.avail || tl.Uptime != tt.up || tl.Utilisation != 26.0/70 {
				t.Errorf("availability %v, uptime %v, utilisation %v; want %v, %v, %v", tl.Availability, tl.Uptime, tl.Utilisation,
					tt.avail, tt.up, 26.0/70)
			}
			// A window inside a run starts in the state the run put the tool in.
			if w := timeline(t, toolsOf(t, tt.recs), "org-1", "IMP-01", at(15), at(17)); len(w.Segments) != 1 || w.Segments[0].State != projections.E10Productive {
				t.Errorf("E10(15–17 min) = %+v, want one productive segment", w.Segments)
			}
		})
	}
	if tl := timeline(t, toolsOf(t, l.recs), "org-2", "IMP-01", at(0), at(70)); len(tl.Segments) != 1 || tl.Segments[0].State != projections.E10Standby {
		t.Errorf("another organisation's IMP-01 = %+v, want standby throughout", tl.Segments)
	}
}

// TestE10ProjectionMatchesPerRequest: the standing projection answers
// exactly what the route computed per request from the log before it
// (the reference below), on the same log of many runs, tools and
// organisations with out-of-order and equal times; also when restored
// from a snapshot taken half way.
func TestE10ProjectionMatchesPerRequest(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 18))
	t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	l := &e10Log{t: t}
	orgs, tools := []string{"org-1", "org-2"}, []string{"IMP-01", "IMP-02", "", "RTP-01"}
	clock := 0
	next := func() time.Time { // mostly forward; ties and small steps back
		clock += rng.IntN(40) - 5
		return t0.Add(time.Duration(clock) * time.Second)
	}
	for i := range 120 {
		org, tool := orgs[rng.IntN(2)], tools[rng.IntN(len(tools))]
		id := fmt.Sprintf("R%03d", i)
		var fault *process.Fault
		if rng.IntN(4) == 0 {
			fault = &process.Fault{Kind: process.FaultTransient, AtProgress: 50}
		}
		add := func(p events.Payload) { l.add(events.RunStream(id), org, next(), p) }
		add(&events.RunRequested{RunID: id, JobID: "j1", Kind: process.KindIon, Recipe: json.RawMessage(`{}`), ToolID: tool, Fault: fault})
		add(&events.RunStarted{JobID: "j1"})
		for step := 1; rng.IntN(3) > 0; step++ {
			switch rng.IntN(8) {
			case 0:
				add(&events.RunPaused{JobID: "j1", Step: step})
				add(&events.RunResumed{JobID: "j1", Step: step})
			case 1:
				add(&events.RunRetryScheduled{JobID: "j1", RetryCount: 1})
				add(&events.RunStarted{JobID: "j1", Attempt: 1})
			case 2:
				add(&events.RunCancelled{JobID: "j1", Step: step})
				add(&events.RunRetried{JobID: "j2", FromJobID: "j1", Fault: fault})
				add(&events.RunStarted{JobID: "j2"})
			}
		}
		switch rng.IntN(3) {
		case 0:
			add(&events.RunFailed{JobID: "j1", Step: rng.IntN(2) * 9, Error: "fault"})
		case 1:
			add(&events.RunCompleted{JobID: "j1", Step: 9, Result: json.RawMessage(`{}`)})
		}
		add(&events.TelemetryRecorded{JobID: "j1"}) // not a state change
	}
	end := next().Add(time.Hour)
	half := len(l.recs) / 2
	restored := toolsOf(t, l.recs[:half])
	snap, err := restored.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored = projections.NewTools()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	for _, rec := range l.recs[half:] {
		if err := restored.Apply(rec); err != nil {
			t.Fatal(err)
		}
	}
	live := toolsOf(t, l.recs)
	windows := [][2]time.Time{{t0, end}, {t0.Add(-time.Hour), end.Add(time.Hour)}}
	for range 10 {
		a, b := t0.Add(time.Duration(rng.IntN(clock+1))*time.Second), t0.Add(time.Duration(rng.IntN(clock+1))*time.Second)
		if b.Before(a) {
			a, b = b, a
		}
		windows = append(windows, [2]time.Time{a, b.Add(time.Second)})
	}
	compared := 0
	for _, org := range orgs {
		var mine []events.Record // what ReadAll with the organisation's filter answered
		for _, rec := range l.recs {
			if rec.Metadata.OrgID == org {
				mine = append(mine, rec)
			}
		}
		for _, tool := range []string{"IMP-01", "IMP-02", "ion", "RTP-01", "none"} {
			for _, w := range windows {
				want := perRequestE10(mine, tool, w[0], w[1])
				for name, m := range map[string]*projections.Tools{"live": live, "restored": restored} {
					got := timeline(t, m, org, tool, w[0], w[1])
					got.Uptime = 0 // a figure the reference did not have
					if diff := cmp.Diff(want, got); diff != "" {
						t.Fatalf("%s %s/%s %s–%s (-per request +projection):\n%s", name, org, tool, w[0], w[1], diff)
					}
				}
				compared += len(want.Segments)
			}
		}
	}
	t.Logf("%d records, %d segments compared", len(l.recs), compared)
}

type oldMark struct {
	t     time.Time
	runID string
	what  int // oldStart, oldStop, oldFault
	eng   bool
}

const (
	oldStart = iota
	oldStop
	oldFault
)

// perRequestE10 is the E10 timeline as the route computed it before the
// standing projection (kept verbatim as the reference): it folds run events into a tool's E10 timeline (see projections.E10Timeline): a
// run processes from its RunStarted (or RunResumed) to its RunPaused,
// RunCompleted, RunFailed, RunCancelled or RunRetryScheduled; a failed
// run's fault, or a transient fault's retry, takes the tool down until
// the next run starts on it. Times are the records' (store) times.
func perRequestE10(recs []events.Record, toolID string, since, until time.Time) projections.E10Timeline {
	tools := map[string]string{} // run → tool
	eng := map[string]bool{}
	var marks []oldMark
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
			tools[runID] = projections.ToolOf(e)
			eng[runID] = e.Fault != nil || e.Disturbance != nil
			continue
		}
		if tools[runID] != toolID {
			continue
		}
		m := oldMark{t: rec.Time, runID: runID, eng: eng[runID], what: -1}
		switch e := p.(type) {
		case *events.RunStarted, *events.RunResumed:
			m.what = oldStart
		case *events.RunPaused, *events.RunCompleted, *events.RunCancelled:
			m.what = oldStop
		case *events.RunRetryScheduled:
			m.what = oldFault
		case *events.RunFailed:
			m.what = oldStop
			if e.Step > 0 { // a fault while processing, not a refused start
				m.what = oldFault
			}
		case *events.RunRetried:
			eng[runID] = e.Fault != nil
		}
		if m.what >= 0 {
			marks = append(marks, m)
		}
	}
	sort.SliceStable(marks, func(i, j int) bool { return marks[i].t.Before(marks[j].t) })

	tl := projections.E10Timeline{ToolID: toolID, Since: since, Until: until, Segments: []projections.E10Segment{},
		Seconds: map[string]float64{projections.E10Productive: 0, projections.E10Engineering: 0, projections.E10Standby: 0, projections.E10UnscheduledDown: 0, projections.E10ScheduledDown: 0}}
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
			return projections.E10Productive, prod
		case len(engs) > 0:
			return projections.E10Engineering, engs
		case down != "":
			return projections.E10UnscheduledDown, []string{down}
		}
		return projections.E10Standby, nil
	}
	apply := func(m oldMark) {
		switch m.what {
		case oldStart:
			running[m.runID] = m.eng
			down = ""
		case oldStop:
			delete(running, m.runID)
		case oldFault:
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
		if n > 0 && tl.Segments[n-1].State == st && oldEqualIDs(tl.Segments[n-1].RunIDs, ids) {
			tl.Segments[n-1].End = end
		} else {
			tl.Segments = append(tl.Segments, projections.E10Segment{State: st, Start: cur, End: end, RunIDs: ids})
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
		downtime := per[projections.E10UnscheduledDown] + per[projections.E10ScheduledDown]
		tl.Availability = float64(total-downtime) / float64(total)
		tl.Utilisation = float64(per[projections.E10Productive]) / float64(total)
	}
	return tl
}

func oldEqualIDs(a, b []string) bool {
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

// TestE10ProjectionCheckpointsAndRebuilds: the tools model runs in the
// projection runner on JetStream with its checkpoint; a node restarted
// from the checkpoint, and one rebuilt from the log, answer what the
// per-request fold of the log answers.
func TestE10ProjectionCheckpointsAndRebuilds(t *testing.T) {
	s, cps := startJetStream(t)
	md2 := events.Metadata{OrgID: "org-1", UserID: "u-1", Role: "engineer"}
	run := func(i int, tool string, fail bool) {
		id := fmt.Sprintf("ION-E10-%02d", i)
		end := events.Payload(&events.RunCompleted{JobID: "j", Step: 9, Result: json.RawMessage(`{}`)})
		if fail {
			end = &events.RunFailed{JobID: "j", Step: 5, Error: "interlock"}
		}
		appendRun(t, s, id, md2, &events.RunRequested{RunID: id, JobID: "j", Kind: process.KindIon, Recipe: json.RawMessage(`{}`), ToolID: tool},
			&events.RunStarted{JobID: "j"}, end)
	}
	start := time.Now().UTC().Add(-time.Minute)
	for i := range 4 {
		run(i, "IMP-01", i == 2)
	}
	live := projections.NewTools()
	runOnce(t, s, cps, live) // saves its checkpoint when it stops
	if pos, _, err := cps.Load(t.Context(), "tools"); err != nil || pos == 0 {
		t.Fatalf("tools checkpoint = position %d, %v; want one", pos, err)
	}
	for i := 4; i < 7; i++ {
		run(i, "IMP-01", false)
	}
	ev, err := events.New(&events.ToolMaintenanceScheduled{MaintenanceID: "m1", OrgID: "org-1", ToolID: "IMP-01",
		From: time.Now().UTC().Add(time.Minute), Until: time.Now().UTC().Add(time.Hour), Reason: "PM"}, md2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), events.ToolStream("org-1", "IMP-01"), events.ExpectAny, ev); err != nil {
		t.Fatal(err)
	}
	restarted := projections.NewTools()
	runOnce(t, s, cps, restarted) // from the checkpoint, then the rest
	if err := projections.Rebuild(t.Context(), cps, "tools"); err != nil {
		t.Fatal(err)
	}
	rebuilt := projections.NewTools()
	runOnce(t, s, cps, rebuilt)

	recs, err := s.ReadAll(t.Context(), 0, events.Filter{OrgID: "org-1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().UTC().Add(2 * time.Hour)
	want := timeline(t, toolsOf(t, recs), "org-1", "IMP-01", start, until)
	if n := len(want.Segments); n < 5 || want.Seconds[projections.E10ScheduledDown] == 0 || want.Seconds[projections.E10UnscheduledDown] == 0 {
		t.Fatalf("the log's timeline = %+v; want runs, a fault and a maintenance window", want)
	}
	for name, m := range map[string]*projections.Tools{"restarted from its checkpoint": restarted, "rebuilt": rebuilt} {
		if diff := cmp.Diff(want, timeline(t, m, "org-1", "IMP-01", start, until)); diff != "" {
			t.Errorf("%s (-log +projection):\n%s", name, diff)
		}
	}
	// Before the window, the per-request fold of the run events agrees.
	var runsOnly []events.Record
	for _, rec := range recs {
		if events.Category(rec.Stream) == events.CategoryRun {
			runsOnly = append(runsOnly, rec)
		}
	}
	now := time.Now().UTC()
	got := timeline(t, rebuilt, "org-1", "IMP-01", start, now)
	got.Uptime = 0
	if diff := cmp.Diff(perRequestE10(runsOnly, "IMP-01", start, now), got); diff != "" {
		t.Errorf("rebuilt vs the per-request fold (-per request +projection):\n%s", diff)
	}
}
