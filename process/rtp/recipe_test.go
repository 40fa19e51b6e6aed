package rtp

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/spectra-fab/spectra/process"
)

// seedJSON is the seed's example recipe (§2.7).
const seedJSON = `{
    "segments": [
        {"target_temp_c": 800, "duration_s": 5, "ramp_rate_c_s": 50},
        {"target_temp_c": 1000, "duration_s": 10, "ramp_rate_c_s": 40},
        {"target_temp_c": 1000, "duration_s": 30},
        {"target_temp_c": 400, "duration_s": 15, "ramp_rate_c_s": 40}
    ],
    "initial_temp_c": 25.0,
    "n2_flow_slm": 10.0,
    "o2_flow_slm": 0.0,
    "controller_type": "pid",
    "pid_kp": 5.0,
    "pid_ki": 0.5,
    "pid_kd": 1.0,
    "wafer_id": "W12345",
    "ion_implant_context": {"species": "P", "energy_kev": 40.0, "dose_atoms_cm2": 1e15},
    "lot_id": "LOT-001",
    "comments": "Activation anneal"
}`

func seedRecipe(tb testing.TB) Recipe {
	tb.Helper()
	r, err := ParseRecipe([]byte(seedJSON))
	if err != nil {
		tb.Fatalf("ParseRecipe(seed) = %v", err)
	}
	return r
}

func TestParseSeedRecipe(t *testing.T) {
	r := seedRecipe(t)
	if len(r.Segments) != 4 || r.Segments[2].RampRateCS != nil || *r.Segments[1].RampRateCS != 40 {
		t.Errorf("segments = %+v", r.Segments)
	}
	if r.Implant == nil || r.Implant.Species != "P" || r.Kd != 1 || r.WaferID != "W12345" {
		t.Errorf("recipe = %+v", r)
	}
	p := NewProfile(r.InitialC, r.Segments)
	// 25→800 at 50 (15.5 s) + 5 + 800→1000 at 40 (5 s) + 10 + 30 + 1000→400 at 40 (15 s) + 15
	if want := 15.5 + 5 + 5 + 10 + 30 + 15 + 15; math.Abs(p.TotalS-want) > 1e-9 {
		t.Errorf("TotalS = %g, want %g", p.TotalS, want)
	}
	if sp := p.Setpoint(15.5 + 2); sp != 800 {
		t.Errorf("Setpoint(17.5) = %g, want 800 (held)", sp)
	}
	if got := p.StepName(22); got != "Segment 2/4: ramping to 1000 °C" {
		t.Errorf("StepName(22) = %q", got)
	}
	if w := r.Warnings(DefaultBudget); len(w) != 0 {
		t.Errorf("Warnings(seed) = %q, want none", w)
	}
}

func TestParseRecipeInvalid(t *testing.T) {
	tests := []struct {
		name   string
		json   string
		fields []string // every field the error must name
	}{
		{"malformed", `{"segments": [`, []string{"recipe"}},
		{"trailing", `{"segments": [{"target_temp_c": 800, "duration_s": 5}]} {}`, []string{"recipe"}},
		{"unknown_field", `{"segments": [{"target_temp_c": 800, "duration_s": 5}], "lamp": 3}`, []string{"lamp"}},
		{"unknown_segment_field", `{"segments": [{"target_temp_c": 800, "duration_s": 5, "rate": 3}]}`, []string{"segments[0].rate"}},
		{"wrong_type", `{"segments": [{"target_temp_c": "hot", "duration_s": 5}], "pid_kp": "5"}`, []string{"segments[0].target_temp_c", "pid_kp"}},
		{"missing_segments", `{"initial_temp_c": 25}`, []string{"segments"}},
		{"empty_segments", `{"segments": []}`, []string{"segments"}},
		{"missing_target", `{"segments": [{"duration_s": 5}]}`, []string{"segments[0].target_temp_c"}},
		{"ramp_up_too_fast", `{"segments": [{"target_temp_c": 800, "duration_s": 5, "ramp_rate_c_s": 150}]}`, []string{"segments[0].ramp_rate_c_s"}},
		{"ramp_down_too_fast", `{"segments": [{"target_temp_c": 1000, "duration_s": 5}, {"target_temp_c": 500, "duration_s": 5, "ramp_rate_c_s": 60}]}`, []string{"segments[1].ramp_rate_c_s"}},
		{"zero_ramp", `{"segments": [{"target_temp_c": 800, "duration_s": 5, "ramp_rate_c_s": 0}]}`, []string{"segments[0].ramp_rate_c_s"}},
		{"every_violation", `{"segments": [{"target_temp_c": 1300, "duration_s": 400}, {"target_temp_c": 300, "duration_s": -1}],
			"initial_temp_c": 1500, "n2_flow_slm": 25, "o2_flow_slm": 6, "controller_type": "fuzzy", "pid_kp": -1, "pid_kd": 1e6,
			"ion_implant_context": {"species": "Xe", "energy_kev": 500, "dose_atoms_cm2": 1e20},
			"simulate_fault": {"kind": "meteor", "at_progress_pct": 150}}`,
			[]string{"segments[0].target_temp_c", "segments[0].duration_s", "segments[1].target_temp_c", "segments[1].duration_s",
				"initial_temp_c", "n2_flow_slm", "o2_flow_slm", "controller_type", "pid_kp", "pid_kd",
				"ion_implant_context.species", "ion_implant_context.energy_kev", "ion_implant_context.dose_atoms_cm2",
				"simulate_fault.kind", "simulate_fault.at_progress_pct"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRecipe([]byte(tt.json))
			ve, ok := errors.AsType[*process.ValidationError](err)
			if !ok {
				t.Fatalf("ParseRecipe() error = %v, want *process.ValidationError", err)
			}
			named := map[string]bool{}
			for _, f := range ve.Fields {
				named[f.Field] = true
				if f.Message == "" || (f.Allowed == "" && f.Field != "") {
					t.Errorf("field error %+v lacks a message or the allowed range", f)
				}
			}
			for _, f := range tt.fields {
				if !named[f] {
					t.Errorf("ParseRecipe() error = %v, does not name %q", err, f)
				}
			}
		})
	}
}

// A too-fast ramp is refused, not clipped, and the error says the limit.
func TestTooFastRampRefused(t *testing.T) {
	_, err := ParseRecipe([]byte(`{"segments": [{"target_temp_c": 1000, "duration_s": 10, "ramp_rate_c_s": 100.5}]}`))
	ve, ok := errors.AsType[*process.ValidationError](err)
	if !ok || len(ve.Fields) != 1 || !strings.Contains(ve.Fields[0].Allowed, "100") || ve.Fields[0].Value != 100.5 {
		t.Fatalf("ParseRecipe(100.5 °C/s) = %v, want one error on segments[0].ramp_rate_c_s allowing ≤ 100", err)
	}
	if _, err := ParseRecipe([]byte(`{"segments": [{"target_temp_c": 1000, "duration_s": 10, "ramp_rate_c_s": 100}]}`)); err != nil {
		t.Errorf("ParseRecipe(100 °C/s) = %v, want ok", err)
	}
}

// A step (no ramp rate) is valid and runs at the limit rate.
func TestStepRunsAtLimitRate(t *testing.T) {
	r, err := ParseRecipe([]byte(`{"segments": [{"target_temp_c": 1000, "duration_s": 10}, {"target_temp_c": 500, "duration_s": 5}]}`))
	if err != nil {
		t.Fatalf("ParseRecipe(steps) = %v", err)
	}
	p := NewProfile(r.InitialC, r.Segments)
	if p.Phases[0].RateCS != MaxRampUpCS || p.Phases[2].RateCS != -MaxRampDownCS {
		t.Errorf("step rates = %g, %g, want %g, %g", p.Phases[0].RateCS, p.Phases[2].RateCS, MaxRampUpCS, -MaxRampDownCS)
	}
}

func TestBudgetWarnings(t *testing.T) {
	r, err := ParseRecipe([]byte(`{"segments": [{"target_temp_c": 1150, "duration_s": 120, "ramp_rate_c_s": 100}],
		"ion_implant_context": {"species": "B", "energy_kev": 20, "dose_atoms_cm2": 1e15}}`))
	if err != nil {
		t.Fatalf("ParseRecipe() = %v (warnings are not errors)", err)
	}
	w := r.Warnings(DefaultBudget)
	if len(w) != 2 {
		t.Errorf("Warnings() = %q, want a diffusion-length and a hot-time warning", w)
	}
}
