package ion

import (
	"fmt"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/r2r"
)

// R2RDoseScale is the run-to-run adjustment key of ion runs: the dose
// set-point multiplier, 0.9–1.1.
const R2RDoseScale = r2rScaleKey

// ionEnergyBuckets are the upper edges (keV) of the ion energy classes.
var ionEnergyBuckets = []float64{5, 10, 20, 50, 100, 200}

// R2RLoops is the run-to-run law of ion runs. dose_setpoint_scale measures
// y = delivered/asked dose = 1 + dose_error_pct/100 (dose_error_pct is
// against the recipe's dose, not the scaled set-point); target 1, clamp
// 0.9–1.1.
func R2RLoops() []r2r.Loop {
	return []r2r.Loop{{Key: R2RDoseScale, Unset: 1, Target: 1, Min: r2rScaleMin, Max: r2rScaleMax,
		Measure: func(obs process.Observations, _ float64) (float64, bool) {
			o, ok := obs.(*Observations)
			if !ok {
				return 0, false
			}
			return 1 + o.DoseErrorPct/100, true
		}}}
}

// R2RClass returns the thread of a recipe: its species and energy bucket
// (ion/P/20-50keV).
func (r Recipe) R2RClass() r2r.Class {
	lo := 0.0
	for i, hi := range ionEnergyBuckets {
		if r.EnergyKeV < hi || i == len(ionEnergyBuckets)-1 {
			return r2r.Class{Name: fmt.Sprintf("ion/%s/%g-%gkeV", r.Species, lo, hi), Loops: []string{R2RDoseScale}}
		}
		lo = hi
	}
	panic("unreachable")
}
