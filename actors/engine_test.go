package actors

import (
	"encoding/json"
	"fmt"

	"github.com/spectra-fab/spectra/process"
)

// testEngine is a small deterministic engine for actor tests: it counts
// steps, samples a seeded value, raises an alarm at AlarmAt and honours
// injected faults like the real engines do.
type testEngine struct {
	recipe testRecipe
	opts   process.Options
	n      int
}

type testRecipe struct {
	Steps   int `json:"steps"`
	AlarmAt int `json:"alarm_at"`
}

type testFactory struct{}

func (testFactory) Validate(raw json.RawMessage) error {
	var r testRecipe
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

func (f testFactory) New(raw json.RawMessage, opts process.Options) (process.Engine, error) {
	if err := f.Validate(raw); err != nil {
		return nil, err
	}
	var r testRecipe
	_ = json.Unmarshal(raw, &r)
	return &testEngine{recipe: r, opts: opts}, nil
}

func (e *testEngine) Kind() process.Kind { return process.KindIon }
func (e *testEngine) SetupMarks() []process.Mark {
	return []process.Mark{{Name: "Validation", Progress: 5}, {Name: "Simulator set-up", Progress: 10}}
}
func (e *testEngine) FinishMarks() []process.Mark {
	return []process.Mark{{Name: "Final checks", Progress: 85}}
}
func (e *testEngine) SafeState() string { return "beam off" }

func (e *testEngine) Step() process.StepResult {
	n := e.n
	e.n++
	t := float64(e.n) * process.Period
	prog := 20 + 60*float64(e.n)/float64(e.recipe.Steps)
	r := process.StepResult{N: n, TimeS: t, Progress: prog, StepName: fmt.Sprintf("Step %d", e.n),
		Sample: process.Sample{"time_s": t, "x": float64(e.opts.Seed%1000) + float64(n)}}
	if e.recipe.AlarmAt > 0 && n == e.recipe.AlarmAt {
		r.Alarms = []process.Alarm{{Source: process.SourceSPC, Parameter: "x", Rule: "WE1", Message: "beyond 3σ", Severity: process.SeverityWarning, TimeS: t}}
	}
	if f := e.opts.Fault; f != nil && prog >= f.AtProgress && (f.Kind != process.FaultTransient || e.opts.Attempt == 0) {
		r.Fault = f
		return r
	}
	r.Done = e.n >= e.recipe.Steps
	return r
}

func (e *testEngine) Finish() process.Outcome {
	return process.Outcome{
		Result:    map[string]any{"steps": e.n, "seed": e.opts.Seed},
		Artifacts: []process.Artifact{{Name: "telemetry.json", ContentType: "application/json", Data: []byte(`{}`)}},
	}
}
