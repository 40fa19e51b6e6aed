package actors

import (
	"encoding/json"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// Policy is the run policy (retries, time limits) of this configuration
// with its defaults: what a run's decisions depended on, for verification
// (run.Verify).
func (c Config) Policy() run.Policy { return c.withDefaults().policy() }

// EngineFunc adapts the factories of each kind to run.NewEngine, for
// verification.
func EngineFunc(engines map[process.Kind]EngineFactory) run.NewEngine {
	return func(kind process.Kind, recipe json.RawMessage, opts process.Options) (process.Engine, error) {
		f, ok := engines[kind]
		if !ok {
			return nil, run.ErrUnknownKind
		}
		return f.New(recipe, opts)
	}
}
