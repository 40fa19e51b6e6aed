package projections_test

import (
	"github.com/spectra-fab/spectra/events/eventstest"

	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/spc"
	"github.com/spectra-fab/spectra/projections"
	"github.com/spectra-fab/spectra/projections/natskv"
)

// driftSeries returns n dose errors (%): in control around 0 (σ 0.2) for
// the first 20 runs, then drifting up 0.25 % a run.
func driftSeries(n int) []float64 {
	r := rand.New(rand.NewPCG(42, 7))
	out := make([]float64, n)
	for i := range out {
		out[i] = 0.2 * r.NormFloat64()
		if i >= 20 {
			out[i] += 0.25 * float64(i-19)
		}
	}
	return out
}

// completeIonRun appends a whole ion run on tool whose R2R observations
// carry doseErr.
func completeIonRun(t *testing.T, s events.Store, i int, tool string, meta events.Metadata, doseErr float64) uint64 {
	t.Helper()
	runID := fmt.Sprintf("ION-20261128-%08X", i)
	jobID := fmt.Sprintf("job-%d", i)
	return appendRun(t, s, runID, meta,
		&events.RunRequested{RunID: runID, JobID: jobID, Kind: process.KindIon, ToolID: tool,
			Recipe: json.RawMessage(`{"species":"P","energy_kev":40}`), CreatedAt: time.Unix(int64(100+i), 0).UTC()},
		&events.RunStarted{JobID: jobID, Seed: int64(i)},
		&events.RunCompleted{JobID: jobID, Result: eventstest.JSON(map[string]any{"dose_error_pct": doseErr}),
			R2R: eventstest.JSON(map[string]float64{"dose_error_pct": doseErr, "mean_beam_current_ma": 5 + doseErr/100, "dose_uniformity_pct": 0.5})},
	)
}

// startSPC runs charts (and, with store, its monitor) behind a runner.
func startSPC(t *testing.T, s events.Store, cps projections.Checkpoints, charts *projections.SPCCharts, monitor bool) *projections.Runner {
	t.Helper()
	r := projections.NewRunner(s, cps, nil, charts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	n := 1
	go func() { done <- r.Run(ctx) }()
	if monitor {
		n++
		m := projections.NewSPCMonitor(charts, s, nil)
		go func() { done <- m.Run(ctx, r.CaughtUp()) }()
	}
	t.Cleanup(func() {
		cancel()
		for range n {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	return r
}

// waitChart polls until the chart satisfies ok.
func waitChart(t *testing.T, charts *projections.SPCCharts, f projections.ChartFilter, ok func(projections.Chart) bool) projections.Chart {
	t.Helper()
	// Generous: with SaveEvery 1 every event also writes a checkpoint, and on
	// a loaded 2-core machine 30 runs took more than 10 s to chart.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs, err := charts.Charts(t.Context(), f)
		if err == nil && len(cs) == 1 && ok(cs[0]) {
			return cs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("Charts(%+v) = %+v, %v; not the chart awaited", f, cs, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settled waits until charts has want points on f's chart, its limits,
// and nothing left to record.
func settled(t *testing.T, charts *projections.SPCCharts, f projections.ChartFilter, want int) projections.Chart {
	t.Helper()
	return waitChart(t, charts, f, func(c projections.Chart) bool {
		facts, _ := charts.Pending()
		return c.TotalPts == want && c.Limits != nil && len(c.Violations) > 0 && len(facts) == 0
	})
}

func TestSPCChartFlagsADriftAgainstItsBaseline(t *testing.T) {
	s := memory.New()
	charts := projections.NewSPCCharts(projections.SPCConfig{})
	startSPC(t, s, nil, charts, true)
	series := driftSeries(30)
	for i, x := range series {
		completeIonRun(t, s, i, "IMP-1", md, x)
	}
	other := md
	other.OrgID = "org-2"
	completeIonRun(t, s, 100, "IMP-1", other, 9)

	f := projections.ChartFilter{OrgID: "org-1", Kind: "ion", ToolID: "IMP-1", Parameter: "dose_error_pct"}
	c := settled(t, charts, f, 30)

	// Limits from the first 20 runs: σ̂ the larger of MR̄/1.128 and the
	// sample sd, limits at ±3.5σ̂.
	mr := spc.IndividualsLimits(series[:20])
	var ss float64
	for _, x := range series[:20] {
		ss += (x - mr.Center) * (x - mr.Center)
	}
	want := spc.NewLimitsAt(mr.Center, max(mr.Sigma, math.Sqrt(ss/19)), projections.SPCLimitSigmas)
	if c.Limits.Center != want.Center || c.Limits.UCL != want.UCL || c.Limits.LCL != want.LCL || c.Limits.Sigma != want.Sigma {
		t.Errorf("chart limits = %+v, want %+v (from the first 20 runs)", *c.Limits, want)
	}
	if len(c.Limits.BaselineJobs) != 20 || c.Limits.BaselineJobs[0] != "job-0" || c.Limits.BaselineJobs[19] != "job-19" {
		t.Errorf("baseline jobs = %v, want job-0…job-19", c.Limits.BaselineJobs)
	}
	// Every violation the rules find after the baseline is recorded, and
	// nothing else: the monitor's facts are what spc.Check says.
	var wantV []spc.Violation
	for _, v := range spc.Check(series, want, projections.DefaultSPCRules...) {
		if v.Index >= 20 {
			wantV = append(wantV, v)
		}
	}
	var got, exp []string
	for _, v := range c.Violations {
		got = append(got, fmt.Sprintf("%d %s", v.Point, v.Rule))
		if v.RunID != fmt.Sprintf("ION-20261128-%08X", v.Point) || v.Message == "" {
			t.Errorf("violation %+v: want the run of point %d and a message", v, v.Point)
		}
	}
	for _, v := range wantV {
		exp = append(exp, fmt.Sprintf("%d %s", v.Index, v.Rule))
	}
	slices.Sort(got)
	slices.Sort(exp)
	if diff := cmp.Diff(exp, got); diff != "" || len(exp) == 0 {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
	rules := map[string]bool{}
	for _, p := range c.Points {
		if p.Index < 20 && (len(p.Rules) > 0 || !p.Baseline) {
			t.Errorf("baseline point %+v: want baseline, no rule", p)
		}
		for _, r := range p.Rules {
			rules[r] = true
		}
	}
	if !rules[spc.WE1] {
		t.Errorf("rules broken = %v, want WE1 among them (a 1.5σ-per-run drift)", rules)
	}
	t.Logf("limits %.3f ± %.3f; violations %v", c.Limits.Center, 3*c.Limits.Sigma, got)

	// Organisation isolation, and a chart that does not exist.
	if cs, _ := charts.Charts(t.Context(), projections.ChartFilter{OrgID: "org-2", Parameter: "dose_error_pct"}); len(cs) != 1 || cs[0].TotalPts != 1 {
		t.Errorf("org-2's charts = %+v, want its one point only", cs)
	}
	if _, err := charts.Charts(t.Context(), projections.ChartFilter{OrgID: "org-3"}); err != projections.ErrNotFound {
		t.Errorf("Charts(org-3) = %v, want ErrNotFound", err)
	}

	// The facts are in the tool's SPC stream, written with expected
	// revisions by the one monitor.
	recs, err := s.ReadStream(t.Context(), projections.SPCStream("org-1", process.KindIon, "IMP-1"), events.Forwards, 0, 0)
	if err != nil {
		t.Fatalf("ReadStream(spc): %v", err)
	}
	var limits, violations int
	for _, r := range recs {
		switch events.BaseType(r.Type) {
		case events.TypeSPCLimitsEstablished:
			limits++
		case events.TypeSPCRuleViolated:
			violations++
		}
		if r.Metadata.OrgID != "org-1" || r.Metadata.CausationID == "" {
			t.Errorf("spc record %s metadata = %+v, want org-1 and a causation id", r.Type, r.Metadata)
		}
	}
	if limits != 3 || violations < len(c.Violations) {
		t.Errorf("spc stream holds %d limits and %d violations, want 3 (three parameters) and ≥ %d", limits, violations, len(c.Violations))
	}

	// A second monitor over the same log records nothing again.
	again := projections.NewSPCCharts(projections.SPCConfig{})
	r2 := startSPC(t, s, nil, again, false)
	<-r2.CaughtUp()
	if n := projections.NewSPCMonitor(again, s, nil).Record(t.Context()); n != 0 {
		t.Errorf("a second monitor appended %d facts, want 0", n)
	}
}

func TestSPCMonitorsRaceWithoutDuplicates(t *testing.T) {
	s := memory.New()
	a := projections.NewSPCCharts(projections.SPCConfig{Baseline: 5})
	b := projections.NewSPCCharts(projections.SPCConfig{Baseline: 5})
	startSPC(t, s, nil, a, true)
	startSPC(t, s, nil, b, true)
	for i, x := range []float64{0, 0.1, -0.1, 0.05, -0.05, 5, 6, 7} {
		completeIonRun(t, s, i, "", md, x)
	}
	f := projections.ChartFilter{OrgID: "org-1", Parameter: "dose_error_pct"}
	ca := settled(t, a, f, 8)
	cb := settled(t, b, f, 8)
	if diff := cmp.Diff(ca, cb); diff != "" {
		t.Errorf("two nodes' charts differ:\n%s", diff)
	}
	recs, _ := s.ReadStream(t.Context(), projections.SPCStream("org-1", process.KindIon, ""), events.Forwards, 0, 0)
	seen := map[string]bool{}
	for _, r := range recs {
		p, _ := events.Decode(r)
		key := fmt.Sprintf("%T %+v", p, p)
		if seen[key] {
			t.Errorf("fact recorded twice: %s", key)
		}
		seen[key] = true
	}
}

// startJetStream starts an embedded NATS server with a store and
// checkpoints on it.
func startJetStream(t testing.TB) (*jetstream.Store, *natskv.Checkpoints) {
	t.Helper()
	srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	st, err := jetstream.New(context.Background(), nc, jetstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := natskv.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	return st, cps
}

// runOnce runs charts behind a runner with checkpoints until it has caught
// up with the log, then stops it (saving its checkpoint).
func runOnce(t *testing.T, s events.Store, cps projections.Checkpoints, ps ...projections.Projection) {
	t.Helper()
	r := projections.NewRunner(s, cps, nil, ps...)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.CaughtUp()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestSPCChartRebuildsIdentically(t *testing.T) {
	s, cps := startJetStream(t)
	live := projections.NewSPCCharts(projections.SPCConfig{})
	r := projections.NewRunner(s, cps, nil, live)
	r.SaveEvery, r.SaveInterval = 1, 0
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 2)
	go func() { done <- r.Run(ctx) }()
	go func() { done <- projections.NewSPCMonitor(live, s, nil).Run(ctx, r.CaughtUp()) }()
	for i, x := range driftSeries(30) {
		completeIonRun(t, s, i, "IMP-1", md, x)
	}
	f := projections.ChartFilter{OrgID: "org-1", Kind: "ion", ToolID: "IMP-1", Parameter: "dose_error_pct"}
	want := settled(t, live, f, 30)
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	// From the checkpoint...
	restored := projections.NewSPCCharts(projections.SPCConfig{})
	runOnce(t, s, cps, restored)
	if got, _ := restored.Charts(t.Context(), f); len(got) != 1 || !cmp.Equal(want, got[0]) {
		t.Errorf("chart restored from its checkpoint differs:\n%s", cmp.Diff(want, got))
	}
	// ...and from the log, after Rebuild dropped the checkpoint, with
	// another baseline configured: the recorded limits stand.
	if err := projections.Rebuild(t.Context(), cps, "spc"); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if _, _, err := cps.Load(t.Context(), "spc"); err != projections.ErrNoCheckpoint {
		t.Fatalf("Load after Rebuild = %v, want ErrNoCheckpoint", err)
	}
	rebuilt := projections.NewSPCCharts(projections.SPCConfig{Baseline: 10})
	runOnce(t, s, cps, rebuilt)
	got, _ := rebuilt.Charts(t.Context(), f)
	if len(got) != 1 {
		t.Fatalf("rebuilt charts = %+v", got)
	}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("rebuilt chart differs (-live +rebuilt):\n%s", diff)
	}
}
