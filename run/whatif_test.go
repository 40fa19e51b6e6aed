package run_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/projections"
	"github.com/spectra-fab/spectra/run"
)

// driftingTool records n ion runs of one tool whose dose drifts 0.2 %
// per run, each started with the adjustments the live R2R projection
// recommends, as the run actor does.
func driftingTool(t *testing.T, n int) []events.Record {
	t.Helper()
	live := projections.NewR2RState()
	var log []events.Record
	rng := rand.New(rand.NewPCG(3, 18))
	recipe := json.RawMessage(`{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"beam_current_ma":5}`)
	add := func(runID string, p events.Payload) {
		ev, err := events.New(p, events.Metadata{OrgID: "org-1", UserID: "eng-1"})
		if err != nil {
			t.Fatal(err)
		}
		rec := events.Record{ID: ev.ID, Stream: events.RunStream(runID), Position: uint64(len(log) + 1), Type: ev.Type,
			Time: time.Unix(int64(len(log)), 0).UTC(), Data: ev.Data, Metadata: ev.Metadata}
		log = append(log, rec)
		if err := live.Apply(rec); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("ION-%03d", i)
		add(id, &events.RunRequested{RunID: id, JobID: "job-" + id, Kind: process.KindIon, Recipe: recipe, ToolID: "IMP-01"})
		adj, basis, err := live.Adjustments(t.Context(), "org-1", process.KindIon, "IMP-01", recipe)
		if err != nil {
			t.Fatal(err)
		}
		add(id, &events.RunStarted{JobID: "job-" + id, R2R: adj, R2RBasis: basis})
		u, ok := adj[ion.R2RDoseScale]
		if !ok {
			u = 1
		}
		a := 1 + 0.002*float64(i) + 0.001*rng.NormFloat64() // the tool's drift
		obs, _ := json.Marshal(ion.Observations{DoseErrorPct: (a + u - 1 - 1) * 100})
		add(id, &events.RunCompleted{JobID: "job-" + id, Result: json.RawMessage(`{}`), R2R: obs})
	}
	return log
}

func TestWhatIfWithTheRecordedSettingReproducesTheDecisions(t *testing.T) {
	log := driftingTool(t, 40)
	rep := run.WhatIf(log, run.Setting{}, func(string) bool { return true }, 10)
	if rep.Decisions != 40 || rep.Changed != 0 {
		t.Fatalf("WhatIf(recorded setting) = %d decisions, %d changed; want 40, 0", rep.Decisions, rep.Changed)
	}
	for _, r := range rep.Runs[1:] {
		if len(r.Recorded) == 0 || !r.Same {
			t.Fatalf("run %s: recorded %v, what-if %v; want the same adjustment", r.RunID, r.Recorded, r.WhatIf)
		}
	}
	if len(rep.Charts) != 1 || len(rep.Charts[0].WhatIf) != len(rep.Charts[0].Recorded) {
		t.Errorf("Charts = %+v, want one chart with the recorded verdicts", rep.Charts)
	}
}

func TestWhatIfR2ROffOnADriftingTool(t *testing.T) {
	log := driftingTool(t, 40)
	rep := run.WhatIf(log, run.Setting{Off: true}, func(string) bool { return true }, 10)
	if rep.Changed < 39 {
		t.Errorf("WhatIf(off).Changed = %d, want every run after the first", rep.Changed)
	}
	c := rep.Charts[0]
	// R2R held the dose on target; without it the drift (0.2 %/run) walks
	// out of the limits the first ten runs set.
	late := 0
	for _, v := range c.WhatIf {
		if v.Index >= 20 && v.Rule == "WE1" {
			late++
		}
	}
	if late < 10 || len(c.WhatIf) <= len(c.Recorded) {
		t.Errorf("what-if verdicts: %d WE1 after run 20 (want ≥ 10), %d violations vs %d recorded", late, len(c.WhatIf), len(c.Recorded))
	}
	// A slower EWMA: other decisions, same runs.
	slow := run.WhatIf(log, run.Setting{Lambda: 0.1}, func(id string) bool { return id >= "ION-020" }, 10)
	if slow.Decisions != 20 || slow.Changed == 0 {
		t.Errorf("WhatIf(λ 0.1, runs 20–39) = %d decisions, %d changed; want 20 and some changed", slow.Decisions, slow.Changed)
	}
}
