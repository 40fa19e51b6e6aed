package main

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"
)

// The tuner's prediction holds for real runs: the seed RTP recipe is tuned
// over HTTP for each target, then run as jobs with the tuned gains, and
// the runs' results agree with predicted_performance — overshoot and ramp
// error within 10 % of the prediction or 3 of its noise spreads, settling
// within 10 % or one 100 ms control period (three runs: the mean, and the
// median for settling, which is heavy-tailed). Each target's metric also
// beats or equals the recipe's own gains' prediction.
func TestTunedGainsConfirmedByRealRuns(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0")
	eng := token(t, "engineer", "org-1")
	seed := map[string]any{}
	if err := json.Unmarshal(readExample(t, "rtp-seed.json"), &seed); err != nil {
		t.Fatal(err)
	}
	type perf struct {
		Over   float64 `json:"max_overshoot_c"`
		Ramp   float64 `json:"avg_ramp_error_c"`
		Settle float64 `json:"settling_time_s"`
		Spread struct {
			Over   float64 `json:"max_overshoot_c"`
			Ramp   float64 `json:"avg_ramp_error_c"`
			Settle float64 `json:"settling_time_s"`
		} `json:"spread"`
	}
	for _, target := range []string{"minimize_overshoot", "minimize_ramp_error", "minimize_settling_time"} {
		r := s.do(t, "POST", "/api/rtp/tune/controller", eng, map[string]any{"controller_type": "pid", "recipe": seed, "optimization_target": target})
		if r.status != 200 {
			t.Fatalf("tune %s = %d %s", target, r.status, r.body)
		}
		var res struct {
			Parameters struct{ Kp, Ki, Kd float64 } `json:"parameters"`
			Predicted  perf                         `json:"predicted_performance"`
			Current    struct {
				Performance perf `json:"recipe_performance"`
			} `json:"current"`
			TuningID string `json:"tuning_id"`
		}
		if err := json.Unmarshal(r.body, &res); err != nil || res.TuningID == "" {
			t.Fatalf("tune %s: %v %s", target, err, r.body)
		}
		better := map[string]bool{
			"minimize_overshoot":     res.Predicted.Over <= res.Current.Performance.Over,
			"minimize_ramp_error":    res.Predicted.Ramp <= res.Current.Performance.Ramp,
			"minimize_settling_time": res.Predicted.Settle >= 0 && (res.Current.Performance.Settle < 0 || res.Predicted.Settle <= res.Current.Performance.Settle),
		}
		if !better[target] {
			t.Errorf("%s: tuned %+v, recipe's own %+v", target, res.Predicted, res.Current.Performance)
		}

		recipe := map[string]any{}
		for k, v := range seed {
			recipe[k] = v
		}
		recipe["pid_kp"], recipe["pid_ki"], recipe["pid_kd"] = res.Parameters.Kp, res.Parameters.Ki, res.Parameters.Kd
		var over, ramp, settle []float64
		for range 3 {
			runID, _ := s.create(t, "rtp", eng, recipe)
			run := s.waitRun(t, "rtp", runID, eng, 60*time.Second)
			if run["status"] != "completed" {
				t.Fatalf("%s: run with tuned gains %v", target, run["status"])
			}
			over = append(over, run["max_overshoot_c"].(float64))
			ramp = append(ramp, run["avg_ramp_error_c"].(float64))
			settle = append(settle, run["settling_time_s"].(float64))
		}
		mean := func(v []float64) float64 { return (v[0] + v[1] + v[2]) / 3 }
		slices.Sort(settle)
		p := res.Predicted
		t.Logf("%s: gains (%g, %g, %g); predicted overshoot %.3f °C, ramp error %.3f °C, settling %.2f s; real runs %.3f, %.3f, %.2f",
			target, res.Parameters.Kp, res.Parameters.Ki, res.Parameters.Kd, p.Over, p.Ramp, p.Settle, mean(over), mean(ramp), settle[1])
		within := func(got, want, spread, floor float64) bool {
			return math.Abs(got-want) <= max(0.1*math.Abs(want), 3*spread, floor)
		}
		if !within(mean(over), p.Over, p.Spread.Over, 0) || !within(mean(ramp), p.Ramp, p.Spread.Ramp, 0) || !within(settle[1], p.Settle, 0, 0.1+1e-9) {
			t.Errorf("%s: real runs (%.3f, %.3f, %.2f) do not confirm the prediction %+v", target, mean(over), mean(ramp), settle[1], p)
		}
	}
}
