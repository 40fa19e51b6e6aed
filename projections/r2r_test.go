package projections_test

import (
	"github.com/spectra-fab/spectra/events/eventstest"

	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

const ionRecipe = `{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"beam_current_ma":5}`

// runWithR2R plays one run the way the run actor does: it asks the model
// for adjustments at start, records them in RunStarted, and completes with
// the observations outcome gives for them.
func runWithR2R(t *testing.T, s events.Store, r *projections.Runner, st *projections.R2RState, runID, tool string,
	kind process.Kind, recipe string, outcome func(adj map[string]float64) map[string]float64) (map[string]float64, map[string]any) {
	t.Helper()
	adj, basis, err := st.Adjustments(t.Context(), md.OrgID, kind, tool, json.RawMessage(recipe))
	if err != nil {
		t.Fatalf("Adjustments: %v", err)
	}
	pos := appendRun(t, s, runID, md,
		&events.RunRequested{RunID: runID, JobID: "job-" + runID, Kind: kind, ToolID: tool, Recipe: json.RawMessage(recipe), CreatedAt: time.Unix(1, 0)},
		&events.RunStarted{JobID: "job-" + runID, R2R: adj, R2RBasis: basis},
		&events.RunCompleted{JobID: "job-" + runID, R2R: eventstest.JSON(outcome(adj))},
	)
	if err := r.WaitFor(t.Context(), pos); err != nil {
		t.Fatal(err)
	}
	return adj, basis
}

func TestR2RLearnsADoseErrorPerToolAndRecipeClass(t *testing.T) {
	s := memory.New()
	st := projections.NewR2RState()
	r := startRunner(t, s, nil, st)
	// The tool delivers 2 % less than its set-point asks.
	tool := func(adj map[string]float64) map[string]float64 {
		scale, ok := adj[projections.R2RDoseScale]
		if !ok {
			scale = 1
		}
		return map[string]float64{"dose_error_pct": 100 * (scale*0.98 - 1)}
	}
	var errs []float64
	for i := range 6 {
		adj, basis := runWithR2R(t, s, r, st, fmt.Sprintf("ION-20261128-%08X", i), "IMP-1", process.KindIon, ionRecipe, tool)
		errs = append(errs, tool(adj)["dose_error_pct"])
		if basis["recipe_class"] != "ion/P/20-50keV" || basis["tool_id"] != "IMP-1" || basis["synced"] != true {
			t.Errorf("run %d basis = %v, want tool IMP-1, class ion/P/20-50keV", i, basis)
		}
		switch i {
		case 0:
			if adj != nil || basis["updates"] != 0 {
				t.Errorf("first run: adjustments %v, basis %v; want none from an empty thread", adj, basis)
			}
		case 1:
			// a = λ(y − u) = 0.3·(0.98 − 1) → u = 1 − a = 1.006
			if got := adj[projections.R2RDoseScale]; math.Abs(got-1.006) > 1e-12 {
				t.Errorf("second run: dose_setpoint_scale = %.6f, want 1.006", got)
			}
			if lf, _ := basis["learned_from"].([]string); len(lf) != 1 || lf[0] != "ION-20261128-00000000" {
				t.Errorf("second run: learned_from = %v, want the first run", basis["learned_from"])
			}
			if _, ok := basis["controllers"].(map[string]any)[projections.R2RDoseScale]; !ok {
				t.Errorf("second run: basis lacks the EWMA state: %v", basis)
			}
		}
	}
	// The error decays as (1 − λξ)^k with the gain mismatch ξ = 0.98 (the
	// tool's dose is y = 0.98·u, physics §5.5).
	for k, e := range errs[1:] {
		want := -2 * math.Pow(1-0.3*0.98, float64(k+1))
		if math.Abs(e-want) > 1e-9 {
			t.Errorf("dose error of run %d = %.4f %%, want ≈ %.4f %%", k+1, e, want)
		}
	}
	// Another tool, another class, another organisation: no history.
	for _, c := range []struct {
		org, tool, recipe string
	}{
		{"org-1", "IMP-2", ionRecipe},
		{"org-1", "IMP-1", `{"species":"B","energy_kev":40,"dose_atoms_cm2":1e15,"beam_current_ma":5}`},
		{"org-1", "IMP-1", `{"species":"P","energy_kev":80,"dose_atoms_cm2":1e15,"beam_current_ma":5}`},
		{"org-2", "IMP-1", ionRecipe},
	} {
		adj, basis, err := st.Adjustments(t.Context(), c.org, process.KindIon, c.tool, json.RawMessage(c.recipe))
		if err != nil || adj != nil || basis["updates"] != 0 {
			t.Errorf("Adjustments(%s, %s, %s) = %v, %v, %v; want no adjustments", c.org, c.tool, c.recipe, adj, basis, err)
		}
	}
	if _, _, err := st.Adjustments(t.Context(), "org-1", process.KindIon, "IMP-1", json.RawMessage(`[]`)); err == nil {
		t.Errorf("Adjustments(bad recipe) = nil error")
	}

	// Snapshot and restore give the same threads and the same answer.
	snap, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b := projections.NewR2RState()
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	f := projections.R2RFilter{OrgID: "org-1"}
	if diff := cmp.Diff(st.Threads(t.Context(), f), b.Threads(t.Context(), f)); diff != "" {
		t.Errorf("restored threads differ:\n%s", diff)
	}
	a1, _, _ := st.Adjustments(t.Context(), "org-1", process.KindIon, "IMP-1", json.RawMessage(ionRecipe))
	a2, _, _ := b.Adjustments(t.Context(), "org-1", process.KindIon, "IMP-1", json.RawMessage(ionRecipe))
	if !cmp.Equal(a1, a2) {
		t.Errorf("restored Adjustments = %v, want %v", a2, a1)
	}
}

func TestR2RTemperatureLoops(t *testing.T) {
	soak := `{"segments":[{"target_temp_c":600,"duration_s":5},{"target_temp_c":1000,"duration_s":10,"ramp_rate_c_s":50}]}`
	spike := `{"segments":[{"target_temp_c":1005,"duration_s":2,"ramp_rate_c_s":100},{"target_temp_c":400,"duration_s":10,"ramp_rate_c_s":40}]}`
	s := memory.New()
	st := projections.NewR2RState()
	r := startRunner(t, s, nil, st)
	// The wafer ends 3 °C below what the set-point asks, and the
	// effective time runs 1.5 s short; the hold offset gives it back.
	tool := func(adj map[string]float64) map[string]float64 {
		return map[string]float64{"temp_error_c": -3, "t_eff_error_s": -1.5 + adj[projections.R2RHoldOffset]}
	}
	for i := range 3 {
		runWithR2R(t, s, r, st, fmt.Sprintf("RTP-20261128-%08X", i), "RTP-1", process.KindRTP, soak, tool)
	}
	adj, basis := runWithR2R(t, s, r, st, "RTP-20261128-000000FF", "RTP-1", process.KindRTP, soak, tool)
	if basis["recipe_class"] != "rtp/1000C" {
		t.Errorf("basis recipe_class = %v, want rtp/1000C", basis["recipe_class"])
	}
	// The temperature error is measured against the adjusted target, so
	// it stays −3 whatever the offset: the offset learns +3·(1 − 0.7^k).
	if got, want := adj[projections.R2RTempOffset], 3*(1-math.Pow(0.7, 3)); math.Abs(got-want) > 1e-9 {
		t.Errorf("temp_offset_c after 3 runs = %.4f, want %.4f", got, want)
	}
	if got, want := adj[projections.R2RHoldOffset], 1.5*(1-math.Pow(0.7, 3)); math.Abs(got-want) > 1e-9 {
		t.Errorf("hold_offset_s after 3 runs = %.4f, want %.4f", got, want)
	}
	// A spike that ends with a cool-down: temp_error_c is the cool-down's,
	// so only the hold time is corrected.
	runWithR2R(t, s, r, st, "RTP-20261128-00000100", "RTP-1", process.KindRTP, spike, tool)
	_, basis, _ = st.Adjustments(t.Context(), "org-1", process.KindRTP, "RTP-1", json.RawMessage(spike))
	if basis["recipe_class"] != "rtp/1000C" { // 1005 °C rounds to the 1000 °C class and shares its thread
		t.Errorf("spike class = %v, want rtp/1000C", basis["recipe_class"])
	}
	th := st.Threads(t.Context(), projections.R2RFilter{OrgID: "org-1", Kind: "rtp"})
	if len(th) != 1 || th[0].Updates != 5 || len(th[0].LearnedFrom) != 5 {
		t.Fatalf("threads = %+v, want one thread with 5 updates", th)
	}
	last := th[0].LearnedFrom[4]
	if _, ok := last.Measured[projections.R2RTempOffset]; ok {
		t.Errorf("the spike's cool-down temperature error was learnt: %+v", last)
	}
}

func TestR2RWaitsForTheLogBeforeAnswering(t *testing.T) {
	s := memory.New()
	st := projections.NewR2RState()
	r := startRunner(t, s, nil, st)
	head := uint64(0)
	st.SetSync(time.Second, func(ctx context.Context) error { return r.WaitFor(ctx, head) })
	head = appendRun(t, s, "ION-20261128-00000001", md,
		&events.RunRequested{RunID: "ION-20261128-00000001", JobID: "j1", Kind: process.KindIon, ToolID: "T", Recipe: json.RawMessage(ionRecipe)},
		&events.RunStarted{JobID: "j1"},
		&events.RunCompleted{JobID: "j1", R2R: eventstest.JSON(map[string]float64{"dose_error_pct": 1})})
	// No WaitFor here: Adjustments itself waits for the head.
	adj, basis, err := st.Adjustments(t.Context(), "org-1", process.KindIon, "T", json.RawMessage(ionRecipe))
	if err != nil || basis["synced"] != true || adj[projections.R2RDoseScale] >= 1 {
		t.Errorf("Adjustments right after a completed run = %v, %v, %v; want a scale below 1 learnt from it", adj, basis, err)
	}
	head = 1 << 40 // never reached: the answer is marked unsynced, not refused
	st.SetSync(20*time.Millisecond, func(ctx context.Context) error { return r.WaitFor(ctx, head) })
	if _, basis, err := st.Adjustments(t.Context(), "org-1", process.KindIon, "T", json.RawMessage(ionRecipe)); err != nil || basis["synced"] != false {
		t.Errorf("Adjustments with the model behind = %v, %v; want synced false", basis, err)
	}
}
