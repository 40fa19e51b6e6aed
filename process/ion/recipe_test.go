package ion

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/spectra-fab/spectra/process"
)

// seedRecipe is the example of the original design (seed §2.6).
const seedRecipe = `{
    "species": "P",
    "energy_kev": 40.0,
    "dose_atoms_cm2": 1e15,
    "tilt_deg": 7.0,
    "twist_deg": 0.0,
    "beam_current_ma": 5.0,
    "scan_speed_mm_s": 50.0,
    "wafer_diameter_mm": 300,
    "wafer_id": "W12345",
    "lot_id": "LOT-001",
    "comments": "Test run"
}`

func TestParseRecipeSeedExample(t *testing.T) {
	r, err := ParseRecipe([]byte(seedRecipe))
	if err != nil {
		t.Fatalf("ParseRecipe(seed example) = %v", err)
	}
	want := Recipe{Species: "P", EnergyKeV: 40, DoseAtomsCm2: 1e15, TiltDeg: 7, BeamCurrentMA: 5, ScanSpeedMMS: 50,
		WaferDiameterMM: 300, WaferID: "W12345", LotID: "LOT-001", Comments: "Test run"}
	if r != want {
		t.Errorf("ParseRecipe(seed example) = %+v, want %+v", r, want)
	}
}

func TestParseRecipeDefaults(t *testing.T) {
	r, err := ParseRecipe([]byte(`{"species":"B","energy_kev":20,"dose_atoms_cm2":5e14,"beam_current_ma":1,"tilt_deg":null}`))
	if err != nil {
		t.Fatalf("ParseRecipe = %v", err)
	}
	if r.TiltDeg != DefaultTiltDeg || r.TwistDeg != DefaultTwistDeg || r.ScanSpeedMMS != DefaultScanSpeedMMS || r.WaferDiameterMM != DefaultWaferDiameterMM {
		t.Errorf("defaults: tilt %v twist %v scan %v wafer %v, want 7 0 50 300", r.TiltDeg, r.TwistDeg, r.ScanSpeedMMS, r.WaferDiameterMM)
	}
	r, err = ParseRecipe([]byte(`{"species":"B","energy_kev":20,"dose_atoms_cm2":5e14,"beam_current_ma":1,"tilt_deg":0}`))
	if err != nil || r.TiltDeg != 0 {
		t.Errorf("explicit tilt 0: got %v, %v; want 0, nil", r.TiltDeg, err)
	}
}

// replace sets one field of the seed example to raw JSON (or removes it
// when raw is "").
func replace(field, raw string) string {
	lines := strings.Split(seedRecipe, "\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.Contains(l, `"`+field+`"`) {
			if raw == "" {
				continue
			}
			comma := strings.HasSuffix(l, ",")
			l = `    "` + field + `": ` + raw
			if comma {
				l += ","
			}
		}
		out = append(out, l)
	}
	s := strings.Join(out, "\n")
	return strings.Replace(s, ",\n}", "\n}", 1)
}

func TestParseRecipeErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		fields []string
	}{
		{"unknown_species", replace("species", `"Ge"`), []string{"species"}},
		{"species_wrong_type", replace("species", `5`), []string{"species"}},
		{"species_missing", replace("species", ""), []string{"species"}},
		{"energy_low", replace("energy_kev", `0.5`), []string{"energy_kev"}},
		{"energy_high", replace("energy_kev", `250`), []string{"energy_kev"}},
		{"energy_string", replace("energy_kev", `"40"`), []string{"energy_kev"}},
		{"energy_missing", replace("energy_kev", ""), []string{"energy_kev"}},
		{"dose_low", replace("dose_atoms_cm2", `1e10`), []string{"dose_atoms_cm2"}},
		{"dose_high", replace("dose_atoms_cm2", `2e16`), []string{"dose_atoms_cm2"}},
		{"dose_missing", replace("dose_atoms_cm2", ""), []string{"dose_atoms_cm2"}},
		{"dose_null", replace("dose_atoms_cm2", "null"), []string{"dose_atoms_cm2"}},
		{"tilt_negative", replace("tilt_deg", `-1`), []string{"tilt_deg"}},
		{"tilt_high", replace("tilt_deg", `91`), []string{"tilt_deg"}},
		{"twist_high", replace("twist_deg", `120`), []string{"twist_deg"}},
		{"twist_bool", replace("twist_deg", `true`), []string{"twist_deg"}},
		{"current_low", replace("beam_current_ma", `0.05`), []string{"beam_current_ma"}},
		{"current_high", replace("beam_current_ma", `51`), []string{"beam_current_ma"}},
		{"current_missing", replace("beam_current_ma", ""), []string{"beam_current_ma"}},
		{"scan_low", replace("scan_speed_mm_s", `0.5`), []string{"scan_speed_mm_s"}},
		{"scan_high", replace("scan_speed_mm_s", `101`), []string{"scan_speed_mm_s"}},
		{"wafer_size", replace("wafer_diameter_mm", `250`), []string{"wafer_diameter_mm"}},
		{"wafer_id_number", replace("wafer_id", `12345`), []string{"wafer_id"}},
		{"wafer_id_long", replace("wafer_id", `"`+strings.Repeat("W", 65)+`"`), []string{"wafer_id"}},
		{"lot_id_array", replace("lot_id", `["a"]`), []string{"lot_id"}},
		{"comments_object", replace("comments", `{}`), []string{"comments"}},
		{"priority_fraction", strings.Replace(seedRecipe, `"species"`, `"priority": 1.5, "species"`, 1), []string{"priority"}},
		{"unknown_field", strings.Replace(seedRecipe, `"species"`, `"voltage": 3, "species"`, 1), []string{"voltage"}},
		{"repeated_field", strings.Replace(seedRecipe, `"species": "P"`, `"species": "P", "species": "B"`, 1), []string{"species"}},
		{"fault_kind", strings.Replace(seedRecipe, `"species"`, `"simulate_fault": {"kind": "meteor", "at_progress_pct": 50}, "species"`, 1), []string{"simulate_fault.kind"}},
		{"fault_progress", strings.Replace(seedRecipe, `"species"`, `"simulate_fault": {"kind": "transient", "at_progress_pct": 150}, "species"`, 1), []string{"simulate_fault.at_progress_pct"}},
		{"fault_unknown", strings.Replace(seedRecipe, `"species"`, `"simulate_fault": {"kind": "transient", "when": 1}, "species"`, 1), []string{"simulate_fault.when"}},
		{"fault_not_object", strings.Replace(seedRecipe, `"species"`, `"simulate_fault": "now", "species"`, 1), []string{"simulate_fault"}},
		{"disturbance_range", strings.Replace(seedRecipe, `"species"`, `"simulate_disturbance": {"offset_pct": -150, "drift_pct_per_min": 1, "start_s": -1}, "species"`, 1),
			[]string{"simulate_disturbance.offset_pct", "simulate_disturbance.start_s"}},
		{"malformed_trailing_comma", `{"species": "P", "energy_kev": 40,}`, []string{"energy_kev"}},
		{"malformed_truncated", `{"species": "P", "energy_kev": 4`, []string{"energy_kev"}},
		{"malformed_garbage", `not json`, []string{"body"}},
		{"not_object", `[1, 2]`, []string{"body"}},
		{"empty", ``, []string{"body"}},
		{"trailing_data", seedRecipe + ` {}`, []string{"body"}},
		{"everything_wrong", `{"species":"X","energy_kev":0,"dose_atoms_cm2":1,"tilt_deg":100,"twist_deg":-5,"beam_current_ma":99,"scan_speed_mm_s":0,"wafer_diameter_mm":12}`,
			[]string{"species", "energy_kev", "dose_atoms_cm2", "tilt_deg", "twist_deg", "beam_current_ma", "scan_speed_mm_s", "wafer_diameter_mm"}},
		{"missing_all_required", `{}`, []string{"species", "energy_kev", "dose_atoms_cm2", "beam_current_ma"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRecipe([]byte(tc.body))
			var verr *process.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("ParseRecipe = %v, want *process.ValidationError", err)
			}
			var got []string
			for _, f := range verr.Fields {
				got = append(got, f.Field)
				if f.Allowed == "" || f.Message == "" {
					t.Errorf("field error %+v: want an allowed range and a message", f)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tc.fields)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("ParseRecipe fields = %v, want %v (error: %v)", got, want, err)
			}
		})
	}
}

func TestValidateReportsValueAndRange(t *testing.T) {
	r := Recipe{Species: "P", EnergyKeV: 300, DoseAtomsCm2: 1e15, TiltDeg: 7, BeamCurrentMA: 5, ScanSpeedMMS: 50, WaferDiameterMM: 300}
	err := r.Validate()
	var verr *process.ValidationError
	if !errors.As(err, &verr) || len(verr.Fields) != 1 {
		t.Fatalf("Validate() = %v, want one field error", err)
	}
	f := verr.Fields[0]
	if f.Field != "energy_kev" || f.Value != 300.0 || f.Allowed != allowedEnergy {
		t.Errorf("Validate() field error = %+v, want energy_kev, 300, %q", f, allowedEnergy)
	}
}
