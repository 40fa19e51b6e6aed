package ion

import (
	"strings"
	"testing"

	"github.com/spectra-fab/spectra/process"
)

// A long implant on a stable beam raises no FDC alarm: the drift chart's
// centre follows in-control seconds over a minute, so the source's slow
// ageing (−0.4 % over 500 s, a rate the monitor is never told) does not
// alarm, while a −1 %/min drift still does.
func TestLongStableImplantRaisesNoFDCAlarm(t *testing.T) {
	for _, dose := range []string{"4e15", "1e16"} {
		r := mustRecipe(t, strings.Replace(seedRecipe, `"dose_atoms_cm2": 1e15`, `"dose_atoms_cm2": `+dose, 1))
		for seed := int64(1); seed <= 20; seed++ {
			_, steps := run(t, r, process.Options{Seed: seed * 7919})
			if a := alarms(steps, process.SourceFDC); len(a) > 0 {
				t.Errorf("dose %s, seed %d, %.0f s implant: FDC alarms %v, want none", dose, seed*7919, steps[len(steps)-1].TimeS, a)
			}
			_, drift := run(t, r, process.Options{Seed: seed * 7919, Disturbance: &process.Disturbance{DriftPctPerMin: -1, StartS: 60}})
			if len(alarms(drift, process.SourceFDC)) == 0 {
				t.Errorf("dose %s, seed %d: a −1 %%/min drift from 60 s raised no FDC alarm", dose, seed*7919)
			}
		}
	}
}
