package r2r

import (
	"math"

	"github.com/spectra-fab/spectra/process"
)

// Lambda is the EWMA weight of every run-to-run thread (physics §5.5); the
// engines' own one-run recommendations use the same.
const Lambda = 0.3

// Loop is one controlled variable of a process kind's run-to-run law: the
// adjustment it sets (Key, as the engine reads it from
// process.Options.R2R), the EWMA controller a thread starts from, and how
// a completed run's observations measure it. Every loop models y = a + u
// (unit gain) in the units of its adjustment.
type Loop struct {
	Key string
	// Unset is the adjustment an engine applies when Key is absent.
	Unset float64
	// Target is the loop's set-point for y; Min and Max clamp the
	// recommendation.
	Target, Min, Max float64
	// Measure returns y for a run that was processed with applied and
	// observed obs; ok is false when obs does not measure this loop.
	Measure func(obs process.Observations, applied float64) (y float64, ok bool)
}

// New returns the loop's controller before any run was learnt from.
func (l Loop) New() EWMA {
	e := NewEWMA(Lambda, l.Target)
	e.Min, e.Max = l.Min, l.Max
	e.Applied = e.Recommend()
	return e
}

// Learn returns c after a run processed with applied observed obs, and
// the measurement it learnt from; ok is false (c unchanged) when the run
// does not measure the loop or its measurement is not finite.
func (l Loop) Learn(c EWMA, obs process.Observations, applied float64) (next EWMA, y float64, ok bool) {
	y, ok = l.Measure(obs, applied)
	if !ok || math.IsNaN(y) || math.IsInf(y, 0) {
		return c, y, false
	}
	return c.UpdateApplied(y, applied), y, true
}

// Class is the thread a recipe belongs to: runs of one tool and class
// share their run-to-run controllers. Loops names the keys of the kind's
// loops that apply to the class.
type Class struct {
	Name  string   `json:"name"`
	Loops []string `json:"loops"`
}
