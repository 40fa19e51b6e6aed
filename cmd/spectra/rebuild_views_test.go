package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/projections"
)

// beamTool is a deterministic ion engine for the rebuild test: its beam
// current follows the recipe's simulate_disturbance.offset_pct.
type beamTool struct{}

func (beamTool) Validate(json.RawMessage) error { return nil }
func (beamTool) New(recipe json.RawMessage, opts process.Options) (process.Engine, error) {
	var r struct {
		D *process.Disturbance `json:"simulate_disturbance"`
	}
	if err := json.Unmarshal(recipe, &r); err != nil {
		return nil, err
	}
	b := &beam{rng: rand.New(rand.NewPCG(uint64(opts.Seed), 2))}
	if r.D != nil {
		b.off = r.D.OffsetPct
	}
	return b, nil
}

type beam struct {
	off float64
	rng *rand.Rand
	n   int
}

func (b *beam) Kind() process.Kind          { return process.KindIon }
func (b *beam) SetupMarks() []process.Mark  { return nil }
func (b *beam) FinishMarks() []process.Mark { return nil }
func (b *beam) SafeState() string           { return "beam off" }
func (b *beam) Step() process.StepResult {
	b.n++
	return process.StepResult{N: b.n - 1, TimeS: float64(b.n) * process.Period, Progress: 50, Done: b.n == 5,
		Sample: process.Sample{"time_s": float64(b.n) * process.Period}}
}
func (b *beam) Finish() process.Outcome {
	return process.Outcome{Result: &ion.Result{}, R2R: &ion.Observations{
		MeanBeamCurrentMA: 5*(1+b.off/100) + 0.01*b.rng.NormFloat64(),
		DoseErrorPct:      -2 + 0.05*b.rng.NormFloat64()}}
}

// TestProjectionsRebuildDrawsTheSameChart: 30 runs with a drift from run
// 20 on a real node; after `spectra projections rebuild spc` replays the
// log, the node draws the chart it drew before, limits and violations
// included.
func TestProjectionsRebuildDrawsTheSameChart(t *testing.T) {
	dir := t.TempDir()
	cfg := node.Config{DataDir: dir, NoSync: true, JWTSecret: []byte(testSecret), TimeScale: 0,
		AllowFaultInjection: true, QueueLimit: 1, Engines: map[process.Kind]actors.EngineFactory{process.KindIon: beamTool{}}}
	n, err := node.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		recipe := `{"species":"P","energy_kev":40}`
		if i >= 20 {
			recipe = fmt.Sprintf(`{"species":"P","energy_kev":40,"simulate_disturbance":{"offset_pct":%g}}`, 0.5*float64(i-19))
		}
		if _, err := n.Actors().CreateRun(t.Context(), actors.CreateRun{Kind: process.KindIon, Recipe: json.RawMessage(recipe),
			ToolID: "IMP-R", Meta: events.Metadata{OrgID: "org-1", UserID: "u-1", Role: "engineer"}}); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
	}
	f := projections.ChartFilter{OrgID: "org-1", Kind: "ion", ToolID: "IMP-R", Parameter: "mean_beam_current_ma"}
	var want projections.Chart
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs, _ := n.SPC().Charts(t.Context(), f)
		pending, _ := n.SPC().Pending()
		if len(cs) == 1 && cs[0].TotalPts == 30 && cs[0].Limits != nil && len(pending) == 0 && len(cs[0].Violations) > 0 {
			// The monitor records a point's violations after the point:
			// settled is when a second look 300 ms later sees the same.
			time.Sleep(300 * time.Millisecond)
			again, _ := n.SPC().Charts(t.Context(), f)
			if len(again) == 1 && cmp.Equal(again[0], cs[0]) {
				want = cs[0]
				break
			}
		}
		if time.Now().After(deadline) {
			n.Close()
			t.Fatalf("chart never settled: %+v", cs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.Close()

	if err := runProjections(t.Context(), []string{"rebuild", "spc", "--data-dir", dir, "--no-sync"}); err != nil {
		t.Fatalf("spectra projections rebuild spc: %v", err)
	}
	if err := runProjections(t.Context(), []string{"rebuild", "--data-dir", dir, "--no-sync"}); err != nil {
		t.Fatalf("spectra projections rebuild: %v", err)
	}

	n, err = node.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	got, err := n.SPC().Charts(t.Context(), f)
	if err != nil || len(got) != 1 {
		t.Fatalf("Charts after rebuild = %v, %v", got, err)
	}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("chart after rebuild differs (-before +after):\n%s", diff)
	}
	t.Logf("chart: %d points, limits %.4f ± %.4f, %d violations", got[0].TotalPts, got[0].Limits.Center, 3*got[0].Limits.Sigma, len(got[0].Violations))
}
