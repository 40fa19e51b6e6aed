package main

import (
	"encoding/json"
	"testing"
	"time"
)

// Thirty runs of the real ion engine on one tool, a beam-current offset
// injected from run 21 on: the SPC chart of the mean beam current takes its
// limits from the first twenty runs and flags the shifted runs with the
// rule each broke; the runs after dose errors start with an R2R correction
// recorded in their RunStarted.
func TestSPCChartAndR2RWithTheRealIonEngine(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0", "--allow-fault-injection", "--queue-limit", "1")
	eng := token(t, "engineer", "org-1")
	base := map[string]any{}
	if err := json.Unmarshal(readExample(t, "ion-seed.json"), &base); err != nil {
		t.Fatal(err)
	}
	base["tool_id"] = "IMP-07"
	var last, lastJob string
	for i := range 30 {
		r := map[string]any{}
		for k, v := range base {
			r[k] = v
		}
		if i >= 20 {
			r["simulate_disturbance"] = map[string]any{"offset_pct": -6, "drift_pct_per_min": 0, "start_s": 0}
		}
		last, lastJob = s.create(t, "ion", eng, r)
		if got := s.waitRun(t, "ion", last, eng, 60*time.Second); got["status"] != "completed" {
			t.Fatalf("run %d: %v", i, got["status"])
		}
	}
	var charts struct {
		Charts []struct {
			Limits *struct {
				Center, UCL, LCL float64
				BaselineJobs     []string `json:"baseline_jobs"`
			} `json:"limits"`
			TotalPoints int `json:"total_points"`
			Violations  []struct {
				Point int    `json:"point"`
				Rule  string `json:"rule"`
			} `json:"violations"`
		} `json:"charts"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := s.do(t, "GET", "/api/spc/charts?kind=ion&tool_id=IMP-07&parameter=mean_beam_current_ma", eng, nil)
		if r.status != 200 {
			t.Fatalf("charts = %d %s", r.status, r.body)
		}
		_ = json.Unmarshal(r.body, &charts)
		if len(charts.Charts) == 1 && len(charts.Charts[0].Violations) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(charts.Charts) != 1 || charts.Charts[0].Limits == nil {
		t.Fatalf("charts = %+v, want one chart with limits", charts)
	}
	c := charts.Charts[0]
	if c.TotalPoints != 30 || len(c.Limits.BaselineJobs) != 20 {
		t.Errorf("chart has %d points and a baseline of %d jobs, want 30 and 20", c.TotalPoints, len(c.Limits.BaselineJobs))
	}
	if c.Limits.Center < 4.5 || c.Limits.Center > 5.5 {
		t.Errorf("centre line %g mA, want near the recipe's 5 mA", c.Limits.Center)
	}
	flagged := map[int]bool{}
	for _, v := range c.Violations {
		if v.Rule == "" {
			t.Errorf("violation at point %d names no rule", v.Point)
		}
		if v.Point < 20 {
			t.Errorf("baseline point %d flagged (%s)", v.Point, v.Rule)
		}
		flagged[v.Point] = true
	}
	if len(flagged) < 5 {
		t.Errorf("%d of the 10 shifted runs flagged, want most: %+v", len(flagged), c.Violations)
	}

	// The last run learned from the runs before it on this tool.
	var started struct {
		R2R      map[string]float64 `json:"r2r"`
		R2RBasis map[string]any     `json:"r2r_basis"`
	}
	for _, l := range s.events(t, lastJob, eng) {
		if l.Type == "RunStarted" {
			_ = json.Unmarshal(l.Data, &started)
		}
	}
	learned, _ := started.R2RBasis["learned_from"].([]any)
	if _, ok := started.R2R["dose_setpoint_scale"]; !ok || started.R2RBasis["tool_id"] != "IMP-07" || len(learned) == 0 {
		t.Errorf("RunStarted of run %s: r2r %v, basis %v; want a dose set-point correction with its basis", last, started.R2R, started.R2RBasis)
	}
}
