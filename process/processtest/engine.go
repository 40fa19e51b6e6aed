// Package processtest is a small deterministic process engine for tests of
// the layers above process (actors, projections, API, cluster): a run of a
// given number of 100 ms steps, with a seeded sample, an SPC alarm at a
// chosen step, injected faults honoured like the real engines do, and
// optional extra telemetry columns to make batches as wide as a test needs.
// Tests of the physics use process/ion and process/rtp themselves.
package processtest

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/spectra-fab/spectra/process"
)

// Recipe is the test engine's recipe: {"steps": 30, "alarm_at": 12, "width": 0}.
type Recipe struct {
	Steps   int `json:"steps"`    // 1–100000 steps of 100 ms
	AlarmAt int `json:"alarm_at"` // the step that raises a WE1 alarm; 0: none
	Width   int `json:"width"`    // extra telemetry columns per sample
}

// Factory validates test recipes and builds engines; it has the methods of
// actors.EngineFactory.
type Factory struct {
	// Kind is the engines' process kind (default ion).
	Kind process.Kind
	// Result, when set, is the result every run reports; by default
	// {"steps": n, "seed": seed}.
	Result Result
}

// Result is the test engine's result: any JSON object. Its figures are
// its numbers.
type Result map[string]any

// Figures implements process.Result.
func (r Result) Figures() map[string]float64 {
	f := process.Figures{}
	for k, v := range r {
		if x, ok := v.(float64); ok {
			f.Add(k, x)
		}
	}
	return f
}

// Validate returns a *process.ValidationError for an invalid recipe.
func (Factory) Validate(raw json.RawMessage) error {
	var r Recipe
	ve := &process.ValidationError{}
	if err := json.Unmarshal(raw, &r); err != nil {
		ve.Add("body", string(raw), "JSON object", err.Error())
		return ve
	}
	if r.Steps < 1 || r.Steps > 100000 {
		ve.Add("steps", r.Steps, "1–100000", "out of range")
	}
	return ve.Err()
}

// New builds an engine for a valid recipe.
func (f Factory) New(raw json.RawMessage, opts process.Options) (process.Engine, error) {
	if err := f.Validate(raw); err != nil {
		return nil, err
	}
	var r Recipe
	_ = json.Unmarshal(raw, &r)
	kind := f.Kind
	if kind == "" {
		kind = process.KindIon
	}
	return &Engine{Recipe: r, Opts: opts, kind: kind, result: f.Result}, nil
}

// Engine is the test engine. Its sample "x" at step n is seed%1000 + n, so
// a test can check a re-simulated run sample by sample.
type Engine struct {
	Recipe Recipe
	Opts   process.Options
	kind   process.Kind
	result Result
	n      int
}

var _ process.Engine = (*Engine)(nil)

// Kind implements process.Engine.
func (e *Engine) Kind() process.Kind { return e.kind }

// SetupMarks implements process.Engine.
func (e *Engine) SetupMarks() []process.Mark {
	return []process.Mark{{Name: "Validation", Progress: 5}, {Name: "Simulator set-up", Progress: 10}}
}

// FinishMarks implements process.Engine.
func (e *Engine) FinishMarks() []process.Mark {
	return []process.Mark{{Name: "Final checks", Progress: 85}}
}

// SafeState implements process.Engine.
func (e *Engine) SafeState() string { return "beam off" }

// Step implements process.Engine.
func (e *Engine) Step() process.StepResult {
	n := e.n
	e.n++
	t := float64(e.n) * process.Period
	prog := 20 + 60*float64(e.n)/float64(e.Recipe.Steps)
	r := process.StepResult{N: n, TimeS: t, Progress: prog, StepName: fmt.Sprintf("Implanting (%.0f%% dose)", prog),
		Sample: process.Sample{"time_s": t, "x": float64(e.Opts.Seed%1000) + float64(n), "beam_current_ma": 5 + float64(n%7)/100}}
	for i := range e.Recipe.Width {
		r.Sample[fmt.Sprintf("extra_%03d", i)] = float64(n*i) + 0.123456789
	}
	if e.Recipe.AlarmAt > 0 && n == e.Recipe.AlarmAt {
		r.Alarms = []process.Alarm{{Source: process.SourceSPC, Parameter: "beam_current_ma", Rule: "WE1",
			Message: "Beam current beyond 3σ control limits", Severity: process.SeverityCritical, TimeS: t}}
	}
	if f := e.Opts.Fault; f != nil && prog >= f.AtProgress && (f.Kind != process.FaultTransient || e.Opts.Attempt == 0) {
		r.Fault = f
		return r
	}
	r.Done = e.n >= e.Recipe.Steps
	return r
}

// Finish implements process.Engine.
func (e *Engine) Finish() process.Outcome {
	res := Result{"steps": e.n, "seed": e.Opts.Seed}
	if e.result != nil {
		res = maps.Clone(e.result)
	}
	return process.Outcome{
		Result:    res,
		Artifacts: []process.Artifact{{Name: "telemetry.json", ContentType: "application/json", Data: []byte(`{}`)}},
	}
}
