package projections

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// recipeClasses answers as run.R2RClass does, remembered or not, and a
// caller changing an answer changes no other.
func TestRecipeClassesAnswerAsR2RClass(t *testing.T) {
	var c recipeClasses
	recipes := []struct {
		kind   process.Kind
		recipe string
	}{
		{process.KindIon, `{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"tilt_deg":7,"twist_deg":0,"beam_current_ma":5,"scan_speed_mm_s":50,"wafer_diameter_mm":300}`},
		{process.KindIon, `{"species":"B"}`},
		{process.KindIon, `not json`},
		{"etch", `{}`},
	}
	for i := range 2*maxClasses + 3 {
		r := recipes[i%len(recipes)]
		if i >= len(recipes)*2 && i%len(recipes) == 0 { // new texts, past the bound
			r.recipe = fmt.Sprintf(`{"species":"As","energy_kev":%d,"dose_atoms_cm2":1e15,"tilt_deg":7,"twist_deg":0,"beam_current_ma":5,"scan_speed_mm_s":50,"wafer_diameter_mm":300}`, 10+i)
		}
		got, gotErr := c.of(r.kind, []byte(r.recipe))
		want, wantErr := run.R2RClass(r.kind, []byte(r.recipe))
		if !reflect.DeepEqual(got, want) || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("of(%s, %s) = %+v, %v; run.R2RClass gives %+v, %v", r.kind, r.recipe, got, gotErr, want, wantErr)
		}
		if len(got.Loops) > 0 {
			got.Loops[0] = "changed"
		}
	}
	if c.n > maxClasses {
		t.Errorf("%d classes remembered, want at most %d", c.n, maxClasses)
	}
}
