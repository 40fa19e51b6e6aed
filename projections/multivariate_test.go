package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/eventstest"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/spc"
	"github.com/spectra-fab/spectra/projections"
)

const ionSeedRecipe = `{"species": "P", "energy_kev": 40, "dose_atoms_cm2": 1e15, "tilt_deg": 7, "twist_deg": 0,
	"beam_current_ma": 5, "scan_speed_mm_s": 50, "wafer_diameter_mm": 300}`

// simulateIonRun runs the ion engine on the seed recipe and appends the
// whole run, as the run actor records it, to s; it returns the run's job
// id and result.
func simulateIonRun(t *testing.T, s events.Store, i int, seed int64, d *process.Disturbance) (string, *ion.Result) {
	t.Helper()
	r, err := ion.ParseRecipe([]byte(ionSeedRecipe))
	if err != nil {
		t.Fatal(err)
	}
	e, err := ion.NewEngine(r, process.Options{Seed: seed, Disturbance: d})
	if err != nil {
		t.Fatal(err)
	}
	for !e.Step().Done {
	}
	out := e.Finish()
	runID, jobID := fmt.Sprintf("ION-20261203-%08X", i), fmt.Sprintf("job-mv-%d", i)
	appendRun(t, s, runID, md,
		&events.RunRequested{RunID: runID, JobID: jobID, Kind: process.KindIon, ToolID: "IMP-MV",
			Recipe: json.RawMessage(ionSeedRecipe), Seed: seed, Disturbance: d, CreatedAt: time.Unix(int64(1000+i), 0).UTC()},
		&events.RunStarted{JobID: jobID, Seed: seed},
		&events.RunCompleted{JobID: jobID, Result: eventstest.JSON(out.Result), R2R: eventstest.JSON(out.R2R)})
	return jobID, out.Result.(*ion.Result)
}

// The multivariate check in the live path: a library from the first 50
// completed seed runs of a tool and recipe class, then 40 more runs, every
// fourth with a beam 0.3 % low and a stage 0.3 % fast from the start
// (each variable moves a quarter of its good-run spread). Each disturbed
// run gets a T2 violation on the tool's hotelling_t2 chart, served with
// the SPC charts; no disturbed run raised a within-run alarm or broke a
// rule on any univariate run-to-run chart of the tool; no nominal run
// after the library crossed the T² limit. The charts rebuild identically.
func TestMultivariateFlagsACombinedErrorNoSingleChartSees(t *testing.T) {
	s := memory.New()
	charts := projections.NewSPCCharts(projections.SPCConfig{})
	mv := projections.NewMultivariate(projections.MultivariateConfig{})
	r := projections.NewRunner(s, nil, nil, charts, mv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- r.Run(ctx) }()
	monitor := projections.NewSPCMonitor(charts, s, nil)
	go func() { done <- monitor.Run(ctx, r.CaughtUp()) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})

	combined := &process.Disturbance{OffsetPct: -0.3, Kind: process.ScanSpeedError, Magnitude: 0.3}
	disturbed := map[string]bool{}
	for i := range 90 {
		var d *process.Disturbance
		if i >= 50 && i%4 == 3 {
			d = combined
		}
		job, res := simulateIonRun(t, s, i, int64(7100+i), d)
		if d != nil {
			disturbed[job] = true
			if res.SPCAlertsCount+res.FDCAlarmsCount > 0 {
				t.Errorf("disturbed run %s raised %d within-run alarms, want none", job, res.SPCAlertsCount+res.FDCAlarmsCount)
			}
		}
	}
	f := projections.ChartFilter{OrgID: "org-1", Kind: "ion", ToolID: "IMP-MV"}
	var t2 projections.Chart
	deadline := time.Now().Add(20 * time.Second)
	for {
		cs := mv.Charts(t.Context(), f)
		facts, _ := charts.Pending()
		if len(cs) == 1 && cs[0].TotalPts == 90 && len(facts) == 0 {
			t2 = cs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("multivariate charts = %+v, pending SPC facts %d", cs, len(facts))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if t2.Limits == nil || len(t2.Limits.BaselineJobs) != 50 || t2.RecipeClass != "ion/P/20-50keV" {
		t.Fatalf("T² chart: limits %+v, class %q; want a library of 50 runs of ion/P/20-50keV", t2.Limits, t2.RecipeClass)
	}
	flagged := map[string]bool{}
	for _, v := range t2.Violations {
		if v.Rule != projections.RuleT2 || v.Value <= t2.Limits.UCL {
			t.Errorf("violation %+v: want rule T2 above the UCL %.2f", v, t2.Limits.UCL)
		}
		flagged[v.JobID] = true
	}
	caught, falseAlarms := 0, 0
	for job := range flagged {
		if disturbed[job] {
			caught++
		} else {
			falseAlarms++
		}
	}
	t.Logf("T² chart: UCL %.2f, library centre %.2f; %d of %d disturbed runs flagged, %d of %d nominal runs after the library; %s",
		t2.Limits.UCL, t2.Limits.Center, caught, len(disturbed), falseAlarms, 40-len(disturbed), t2.Limits.Method)
	for _, p := range t2.Points {
		if disturbed[p.JobID] {
			t.Logf("  disturbed %s: T² %.1f, summary %.3f", p.JobID, p.Value, p.Values)
		}
	}
	if caught < len(disturbed) || falseAlarms > 0 {
		t.Errorf("T² flagged %d of %d disturbed runs and %d nominal ones, want all and none", caught, len(disturbed), falseAlarms)
	}

	all, err := charts.Charts(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	var onDisturbed, onNominal []string
	for _, c := range all {
		for _, v := range c.Violations {
			at := fmt.Sprintf("%s %s point %d", c.Parameter, v.Rule, v.Point)
			if !disturbed[v.JobID] {
				onNominal = append(onNominal, at)
				continue
			}
			onDisturbed = append(onDisturbed, at)
			if v.Rule == "WE1" {
				t.Errorf("univariate chart %s: disturbed run %s beyond its limits (%s): the combined error should be inside every single chart's", c.Parameter, v.JobID, v.Message)
			}
		}
	}
	t.Logf("univariate run-to-run charts (%d): violations on the %d disturbed runs %v, on the 80 nominal runs %v", len(all), len(disturbed), onDisturbed, onNominal)
	if !slices.ContainsFunc(all, func(c projections.Chart) bool { return c.Parameter == "mean_beam_current_ma" && c.Limits != nil }) {
		t.Errorf("no univariate beam-current chart with limits among %d charts", len(all))
	}

	// A rebuild from the log draws the identical chart.
	again := projections.NewMultivariate(projections.MultivariateConfig{})
	runOnce(t, s, nil, again)
	if got := again.Charts(t.Context(), f); len(got) != 1 || !chartsEqual(got[0], t2) {
		t.Errorf("rebuilt T² chart differs:\n%+v\nwant\n%+v", got, t2)
	}
	snap, err := mv.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := projections.NewMultivariate(projections.MultivariateConfig{})
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if got := restored.Charts(t.Context(), f); len(got) != 1 || !chartsEqual(got[0], t2) {
		t.Errorf("restored T² chart differs")
	}
}

func chartsEqual(a, b projections.Chart) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb) && !math.IsNaN(a.Limits.UCL)
}

// A chart whose runs have a summary variable 0 in every one (a result
// without it) builds no library until that variable moves; then the
// library is every good run so far, as spc.NewT2Library over them gives
// it. Applying each run, a rebuild and a restore give the same chart.
func TestMultivariateLibraryWaitsForAVariableThatMoves(t *testing.T) {
	s := memory.New()
	const n = 80
	var (
		good [][]float64
		lib  *spc.T2Library
		jobs []string
	)
	for i := range n {
		beam, scan := 0.1*math.Sin(float64(i)), 0.0
		if i >= 60 {
			scan = 0.05 * math.Cos(float64(3*i))
		}
		if i == 30 {
			beam = 0 // a zero in the moving variable changes nothing
		}
		runID, jobID := fmt.Sprintf("ION-20261203-%08X", 0x500+i), fmt.Sprintf("job-zero-%d", i)
		appendRun(t, s, runID, md,
			&events.RunRequested{RunID: runID, JobID: jobID, Kind: process.KindIon, ToolID: "IMP-Z",
				Recipe: json.RawMessage(ionSeedRecipe), CreatedAt: time.Unix(int64(2000+i), 0).UTC()},
			&events.RunCompleted{JobID: jobID, Result: eventstest.JSON(map[string]float64{
				"mean_beam_current_dev_pct": beam, "mean_scan_speed_dev_pct": scan})})
		if lib == nil {
			good = append(good, []float64{beam, scan})
			jobs = append(jobs, jobID)
			if len(good) >= 50 {
				lib, _ = spc.NewT2Library(good, 0.0027)
			}
		}
	}
	if lib == nil || len(jobs) != 61 {
		t.Fatalf("the reference library: %d runs, built %v; want 61 (the first with the scan variable moving)", len(jobs), lib != nil)
	}
	mv := projections.NewMultivariate(projections.MultivariateConfig{})
	runOnce(t, s, nil, mv)
	f := projections.ChartFilter{OrgID: "org-1", Kind: "ion", ToolID: "IMP-Z"}
	cs := mv.Charts(t.Context(), f)
	if len(cs) != 1 || cs[0].TotalPts != n || cs[0].Limits == nil {
		t.Fatalf("charts %+v, want one of %d points with limits", cs, n)
	}
	if got := cs[0].Limits; !slices.Equal(got.BaselineJobs, jobs) || got.UCL != lib.UCL {
		t.Errorf("library of %d runs, UCL %v; want %d runs, UCL %v", len(got.BaselineJobs), got.UCL, len(jobs), lib.UCL)
	}
	snap, err := mv.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := projections.NewMultivariate(projections.MultivariateConfig{})
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if got := restored.Charts(t.Context(), f); len(got) != 1 || !chartsEqual(got[0], cs[0]) {
		t.Errorf("restored chart differs")
	}
	// Live, one run at a time: the same chart.
	live := projections.NewMultivariate(projections.MultivariateConfig{})
	recs, err := s.ReadAll(t.Context(), 0, events.Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if err := live.Apply(rec); err != nil {
			t.Fatal(err)
		}
	}
	if got := live.Charts(t.Context(), f); len(got) != 1 || !chartsEqual(got[0], cs[0]) {
		t.Errorf("chart applied record by record differs")
	}
}
