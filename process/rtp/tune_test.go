package rtp

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/spectra-fab/spectra/process"
)

func tune(tb testing.TB, controller, target string) TuneResult {
	tb.Helper()
	var req TuneRequest
	body := `{"controller_type": "` + controller + `", "recipe": {"segments": [{"target_temp_c": 1000, "duration_s": 30}]}, "optimization_target": "` + target + `"}`
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		tb.Fatalf("unmarshal tune request: %v", err)
	}
	res, err := Tune(req)
	if err != nil {
		tb.Fatalf("Tune(%s) = %v", target, err)
	}
	return res
}

func TestTuneMinimizeOvershoot(t *testing.T) {
	res := tune(t, ControllerPID, MinimizeOvershoot)
	if res.TuningMethod != "relay_feedback" || res.ControllerType != "pid" {
		t.Errorf("Tune() = %+v", res)
	}
	if res.Relay.Ku <= 0 || res.Relay.Pu <= 0 || res.Relay.Cycles < 3 {
		t.Errorf("relay = %+v, want a limit cycle", res.Relay)
	}
	if p := res.ExpectedPerformance; p.OvershootPct >= 2 || p.SettlingTimeS < 0 || p.SteadyStateErr > 0.5 {
		t.Errorf("expected_performance = %+v, want overshoot < 2 %%, settled, steady-state error < 0.5 °C", p)
	}
	// The reported performance is what the gains do: re-run it.
	if got := evaluatePID(res.Parameters, 1000, DefaultN2SLM); got != res.ExpectedPerformance {
		t.Errorf("evaluatePID(%+v) = %+v, want the reported %+v", res.Parameters, got, res.ExpectedPerformance)
	}
	var m map[string]any
	b, _ := json.Marshal(res)
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"controller_type", "parameters", "expected_performance", "tuning_method"} {
		if _, ok := m[k]; !ok {
			t.Errorf("tune response lacks %q: %s", k, b)
		}
	}
}

// The three targets give different gains with the trade-offs they name.
func TestTuneTargetsTradeOff(t *testing.T) {
	over := tune(t, ControllerPID, MinimizeOvershoot)
	ramp := tune(t, ControllerPID, MinimizeRampError)
	settle := tune(t, ControllerPID, MinimizeSettlingTime)
	if over.Parameters == ramp.Parameters || over.Parameters == settle.Parameters {
		t.Errorf("gains: overshoot %+v, ramp %+v, settling %+v; want the overshoot target's to differ", over.Parameters, ramp.Parameters, settle.Parameters)
	}
	po, pr, ps := over.ExpectedPerformance, ramp.ExpectedPerformance, settle.ExpectedPerformance
	if !(po.OvershootPct < pr.OvershootPct && po.OvershootPct < ps.OvershootPct) {
		t.Errorf("overshoot %%: overshoot target %.2f, ramp %.2f, settling %.2f; want the overshoot target's least", po.OvershootPct, pr.OvershootPct, ps.OvershootPct)
	}
	if !(pr.AvgRampErrorC < po.AvgRampErrorC && pr.AvgRampErrorC <= ps.AvgRampErrorC) {
		t.Errorf("ramp error °C: ramp target %.2f, overshoot %.2f, settling %.2f; want the ramp target's least", pr.AvgRampErrorC, po.AvgRampErrorC, ps.AvgRampErrorC)
	}
	if !(ps.SettlingTimeS <= pr.SettlingTimeS) {
		t.Errorf("settling s: settling target %.2f, ramp %.2f; want the settling target's no longer", ps.SettlingTimeS, pr.SettlingTimeS)
	}
	// Same request, same answer.
	if again := tune(t, ControllerPID, MinimizeRampError); again.Parameters != ramp.Parameters {
		t.Errorf("Tune is not deterministic: %+v then %+v", ramp.Parameters, again.Parameters)
	}
}

func TestTuneMPC(t *testing.T) {
	res := tune(t, ControllerMPC, MinimizeRampError)
	if res.ControllerType != ControllerMPC || res.ExpectedPerformance.SettlingTimeS < 0 {
		t.Errorf("Tune(mpc) = %+v", res)
	}
}

func TestTuneInvalid(t *testing.T) {
	tests := []struct {
		name, body, field string
	}{
		{"target", `{"controller_type": "pid", "recipe": {"segments": [{"target_temp_c": 1000, "duration_s": 30}]}, "optimization_target": "fastest"}`, "optimization_target"},
		{"controller", `{"controller_type": "bangbang", "recipe": {"segments": [{"target_temp_c": 1000, "duration_s": 30}]}, "optimization_target": "minimize_overshoot"}`, "controller_type"},
		{"segment", `{"controller_type": "pid", "recipe": {"segments": [{"target_temp_c": 1500, "duration_s": 30}]}, "optimization_target": "minimize_overshoot"}`, "recipe.segments[0].target_temp_c"},
		{"unknown", `{"controller_type": "pid", "recipe": {"segments": [{"target_temp_c": 1000, "duration_s": 30}]}, "optimization_target": "minimize_overshoot", "x": 1}`, "x"},
		{"no_recipe", `{"controller_type": "pid", "optimization_target": "minimize_overshoot"}`, "recipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseTuneRequest([]byte(tt.body))
			if err == nil {
				_, err = Tune(req)
			}
			ve, ok := errors.AsType[*process.ValidationError](err)
			if !ok {
				t.Fatalf("Tune() error = %v, want *process.ValidationError", err)
			}
			found := false
			for _, f := range ve.Fields {
				found = found || f.Field == tt.field
			}
			if !found {
				t.Errorf("Tune() error = %v, want it to name %q", err, tt.field)
			}
		})
	}
}

func BenchmarkTune(b *testing.B) {
	req, err := ParseTuneRequest([]byte(`{"controller_type": "pid", "recipe": {"segments": [{"target_temp_c": 1000, "duration_s": 30}]}, "optimization_target": "minimize_overshoot"}`))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Tune(req); err != nil {
			b.Fatal(err)
		}
	}
}
