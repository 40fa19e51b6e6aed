package rtp

import (
	"fmt"
	"math"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/r2r"
)

// R2RLoops is the run-to-run law of RTP runs:
//
//   - hold_offset_s: y = t_eff_error_s, the effective time at the recipe's
//     nominal peak minus the nominal recipe's (the engine measures it with
//     the hold offset applied); target 0, clamp ±60 s.
//   - temp_offset_c: y = temp_error_c + the offset applied, i.e. the final
//     temperature against the recipe's nominal target; target 0, clamp
//     ±25 °C. Only for recipes whose last segment is at their peak (see
//     R2RClass).
func R2RLoops() []r2r.Loop {
	return []r2r.Loop{
		{Key: R2RHoldOffset, Target: 0, Min: -60, Max: 60,
			Measure: func(obs process.Observations, _ float64) (float64, bool) {
				if o, ok := obs.(*Observations); ok {
					return o.TEffErrorS, true
				}
				return 0, false
			}},
		{Key: R2RTempOffset, Target: 0, Min: -MaxTempOffsetC, Max: MaxTempOffsetC,
			Measure: func(obs process.Observations, applied float64) (float64, bool) {
				if o, ok := obs.(*Observations); ok {
					return o.TempErrorC + applied, true
				}
				return 0, false
			}},
	}
}

// R2RClass returns the thread of a recipe: its peak target rounded to
// 25 °C (rtp/1000C). A recipe that ends with a cool-down measures
// temp_error_c at the cool-down target, which the peak offset does not
// move: its peak is corrected through the hold time (thermal budget)
// alone, so its class has no temp_offset_c loop.
func (r Recipe) R2RClass() r2r.Class {
	peak := math.Inf(-1)
	for _, s := range r.Segments {
		peak = max(peak, s.TargetC)
	}
	c := r2r.Class{Name: fmt.Sprintf("rtp/%gC", math.Round(peak/25)*25), Loops: []string{R2RHoldOffset}}
	if n := len(r.Segments); n > 0 && r.Segments[n-1].TargetC == peak {
		c.Loops = append(c.Loops, R2RTempOffset)
	}
	return c
}
