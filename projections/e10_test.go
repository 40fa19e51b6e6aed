package projections_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// TestE10TimelineAddsUp: a tool with runs, a fault and idle gaps; the
// timeline tiles the period exactly and availability follows E10.
func TestE10TimelineAddsUp(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	at := func(min float64) time.Time { return t0.Add(time.Duration(min * float64(time.Minute))) }
	var recs []events.Record
	add := func(runID string, min float64, p events.Payload) {
		ev, err := events.New(p, events.Metadata{OrgID: "org-1"})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, events.Record{ID: ev.ID, Stream: events.RunStream(runID), Position: uint64(len(recs) + 1),
			Type: ev.Type, Time: at(min), Data: ev.Data, Metadata: ev.Metadata})
	}
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

	tl := projections.E10(recs, "IMP-01", at(0), at(70))
	want := []struct {
		state    string
		from, to float64
	}{
		{projections.E10Standby, 0, 10}, {projections.E10Productive, 10, 20}, {projections.E10Standby, 20, 25},
		{projections.E10Productive, 25, 28}, {projections.E10Standby, 28, 30}, {projections.E10Productive, 30, 35},
		{projections.E10UnscheduledDown, 35, 50}, {projections.E10Engineering, 50, 52}, {projections.E10Productive, 52, 60},
		{projections.E10Standby, 60, 70},
	}
	if len(tl.Segments) != len(want) {
		t.Fatalf("E10 segments = %+v, want %d", tl.Segments, len(want))
	}
	var sum time.Duration
	for i, w := range want {
		s := tl.Segments[i]
		if s.State != w.state || !s.Start.Equal(at(w.from)) || !s.End.Equal(at(w.to)) {
			t.Errorf("segment %d = %s %s–%s, want %s %v–%v min", i, s.State, s.Start.Format("15:04"), s.End.Format("15:04"), w.state, w.from, w.to)
		}
		sum += s.End.Sub(s.Start)
	}
	if sum != 70*time.Minute || tl.TotalSeconds != 4200 {
		t.Errorf("segments add up to %s (total %v s), want exactly 70 min", sum, tl.TotalSeconds)
	}
	if tl.Seconds[projections.E10Productive] != 26*60 || tl.Seconds[projections.E10UnscheduledDown] != 15*60 {
		t.Errorf("Seconds = %v, want 26 min productive and 15 min down", tl.Seconds)
	}
	if got, want := tl.Availability, 55.0/70; got != want {
		t.Errorf("Availability = %v, want %v", got, want)
	}
	if got, want := tl.Utilisation, 26.0/70; got != want {
		t.Errorf("Utilisation = %v, want %v", got, want)
	}
	// A window inside a run starts in the state the run put the tool in.
	if w := projections.E10(recs, "IMP-01", at(15), at(17)); len(w.Segments) != 1 || w.Segments[0].State != projections.E10Productive {
		t.Errorf("E10(15–17 min) = %+v, want one productive segment", w.Segments)
	}
}
