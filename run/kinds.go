package run

import (
	"encoding/json"
	"fmt"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/r2r"
	"github.com/spectra-fab/spectra/process/rtp"
)

// ErrUnknownKind is returned for a process kind Spectra does not run.
var ErrUnknownKind = fmt.Errorf("unknown process kind")

// Outcome decodes a completed run's result and run-to-run observations
// into the typed values of its kind (ion.Result and ion.Observations,
// rtp.Result and rtp.Observations). Observations are nil when the event
// has none.
func Outcome(kind process.Kind, e *events.RunCompleted) (process.Result, process.Observations, error) {
	var res process.Result
	var obs process.Observations
	switch kind {
	case process.KindIon:
		res, obs = &ion.Result{}, &ion.Observations{}
	case process.KindRTP:
		res, obs = &rtp.Result{}, &rtp.Observations{}
	default:
		return nil, nil, fmt.Errorf("outcome of %q: %w", kind, ErrUnknownKind)
	}
	if len(e.Result) > 0 {
		if err := json.Unmarshal(e.Result, res); err != nil {
			return nil, nil, fmt.Errorf("decode %s result: %w", kind, err)
		}
	}
	if len(e.R2R) == 0 {
		return res, nil, nil
	}
	if err := json.Unmarshal(e.R2R, obs); err != nil {
		return nil, nil, fmt.Errorf("decode %s observations: %w", kind, err)
	}
	return res, obs, nil
}

// R2RClass returns the run-to-run thread of a recipe of kind. It returns
// an error for a recipe that does not parse.
func R2RClass(kind process.Kind, recipe json.RawMessage) (r2r.Class, error) {
	switch kind {
	case process.KindIon:
		r, err := ion.ParseRecipe(recipe)
		if err != nil {
			return r2r.Class{}, fmt.Errorf("classify: %w", err)
		}
		return r.R2RClass(), nil
	case process.KindRTP:
		r, err := rtp.ParseRecipe(recipe)
		if err != nil {
			return r2r.Class{}, fmt.Errorf("classify: %w", err)
		}
		return r.R2RClass(), nil
	}
	return r2r.Class{}, fmt.Errorf("classify %q: %w", kind, ErrUnknownKind)
}

// R2RLoops returns the run-to-run law of kind (nil for an unknown kind).
func R2RLoops(kind process.Kind) []r2r.Loop {
	switch kind {
	case process.KindIon:
		return ion.R2RLoops()
	case process.KindRTP:
		return rtp.R2RLoops()
	}
	return nil
}
