// Package process is Spectra's pure domain: recipes and their validation,
// hardware-in-the-loop simulators, controllers, SPC/FDC, run-to-run control
// and virtual metrology.
//
// Nothing in process or below it does I/O, reads a clock or starts a
// goroutine, and everything is deterministic for a given seed: the same
// recipe, seed and commands give the same samples, bit for bit. That is what
// lets a run actor recover a run by re-simulating it from its own stream.
//
// The root package holds only the vocabulary shared by every process kind:
// the Engine that a run actor steps, the samples, alarms and outcome it
// produces, and the validation error every recipe returns. The physics lives
// in sub-packages: process/ion, process/rtp, process/spc, process/r2r,
// process/silicon.
package process

import (
	"fmt"
	"strings"
)

// Period is the control period of every engine in seconds of process time:
// one Step advances the process by 100 ms.
const Period = 0.1

// StepsPerBatch is how many steps make one telemetry batch (one second of
// process time).
const StepsPerBatch = 10

// Kind names a process kind.
type Kind string

// Process kinds.
const (
	KindIon Kind = "ion"
	KindRTP Kind = "rtp"
)

// Sample is one 100 ms telemetry sample: field name → value. The field names
// are the API's telemetry fields (time_s, beam_current_ma, …).
type Sample map[string]float64

// Severity grades an alarm.
type Severity string

// Alarm severities.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// AlarmSource says which monitor raised an alarm.
type AlarmSource string

// Alarm sources.
const (
	SourceSPC AlarmSource = "spc" // a control-chart rule
	SourceFDC AlarmSource = "fdc" // fault detection (CUSUM drift, interlocks)
)

// Alarm is an SPC violation or an FDC alarm raised during a step.
type Alarm struct {
	Source    AlarmSource `json:"source"`
	Parameter string      `json:"parameter"`
	Rule      string      `json:"rule"` // e.g. "WE1", "CUSUM+"
	Message   string      `json:"message"`
	Severity  Severity    `json:"severity"`
	Value     float64     `json:"value"`
	TimeS     float64     `json:"time_s"`
}

// FaultKind is a fault the simulator can be told to inject (hardware-in-the-
// loop testing).
type FaultKind string

// Fault kinds.
const (
	FaultTransient FaultKind = "transient" // goes away when the run is retried
	FaultPermanent FaultKind = "permanent" // fails every attempt
	FaultInterlock FaultKind = "interlock" // a tool interlock trips; fails the run
)

// Fault is an injected fault, raised when the run's progress reaches
// AtProgress percent.
type Fault struct {
	Kind       FaultKind `json:"kind"`
	AtProgress float64   `json:"at_progress_pct"`
	Message    string    `json:"message,omitempty"`
}

// Options are the inputs of an engine besides its recipe. Together with the
// recipe they fix every sample the engine produces.
type Options struct {
	// Seed seeds every random source of the simulator.
	Seed int64
	// R2R holds the run-to-run adjustments applied to this run, by name
	// (for example "dose_setpoint_scale" or "hold_offset_s"). Empty means none.
	R2R map[string]float64
	// Fault, when set, is injected during the run.
	Fault *Fault
	// Attempt counts the attempts of this run, from 0. A transient fault
	// fires only on attempt 0.
	Attempt int
	// Disturbance, when set, is injected into the simulator's primary
	// actuator (the beam current for ion, the lamp efficiency for RTP), for
	// hardware-in-the-loop tests of fault detection and SPC.
	Disturbance *Disturbance
}

// Disturbance is injected into a simulator from a given process time on:
// an offset and a drift of the primary actuator (the beam current for ion,
// the lamp efficiency for RTP), and, with Kind, one disturbance of the
// catalogue (Disturbances) of the given Magnitude. A disturbance without
// Kind is the offset and drift alone, as before the catalogue.
type Disturbance struct {
	OffsetPct      float64         `json:"offset_pct"`           // step change, % of nominal
	DriftPctPerMin float64         `json:"drift_pct_per_min"`    // ramp, % of nominal per minute
	StartS         float64         `json:"start_s"`              // process time it begins
	Kind           DisturbanceKind `json:"kind,omitempty"`       // a catalogue disturbance, or none
	Magnitude      float64         `json:"magnitude,omitempty"`  // in the kind's unit; 0: its default
	DurationS      float64         `json:"duration_s,omitempty"` // how long the kind acts; 0: to the end
}

// StepResult is what one Step produced.
type StepResult struct {
	N        int     // step index, from 0
	TimeS    float64 // process time at the end of the step
	Sample   Sample
	Progress float64 // 0–100, the run's overall progress as the seed defines it
	StepName string  // the human step name, e.g. "Implanting (26% dose)"
	Alarms   []Alarm
	// Fault is set when an injected or simulated hardware fault ends the run
	// at this step.
	Fault *Fault
	// Done is true on the last processing step.
	Done bool
}

// Mark is a named step of a run with its progress percentage, as the seed
// lists them ("Validation" 5 %, "Simulator set-up" 10 %, …).
type Mark struct {
	Name     string  `json:"name"`
	Progress float64 `json:"progress"`
}

// Artifact is a file a run produces: full-resolution telemetry, a dose map,
// an SVG chart.
type Artifact struct {
	Name        string
	ContentType string
	Data        []byte
}

// Result is a run's results: a struct of its process kind (ion.Result,
// rtp.Result) that marshals to the API's JSON object
// (final_dose_atoms_cm2, vm_prediction, …).
type Result interface {
	// Figures returns the result's finite scalar figures by API field
	// name: the values a run-to-run SPC chart may plot.
	Figures() map[string]float64
}

// Observations are what the run-to-run controller learns from a run: a
// struct of its process kind (ion.Observations, rtp.Observations) that
// marshals to a JSON object of numbers.
type Observations interface {
	// Values returns the finite observations by name (dose_error_pct, …).
	Values() map[string]float64
}

// Outcome is what an engine reports when its processing is done.
type Outcome struct {
	// Result holds the run's results.
	Result Result
	// Artifacts are the files to store with the run.
	Artifacts []Artifact
	// R2R holds the observations the run-to-run controller learns from;
	// nil when the kind has none.
	R2R Observations
}

// Engine is one run's simulator and controllers. A run actor calls Setup
// marks, then Step until a result says Done (or it stops the run), then
// Finish. Engines are not safe for concurrent use.
type Engine interface {
	// Kind is the engine's process kind.
	Kind() Kind
	// SetupMarks are the steps before processing, with their progress
	// (validation, simulator and controller set-up).
	SetupMarks() []Mark
	// Step advances the process by one Period.
	Step() StepResult
	// FinishMarks are the steps after processing, with their progress
	// (final checks, profile, VM, artifacts), ending before completion.
	FinishMarks() []Mark
	// Finish computes the run's results. Call it once, after Done.
	Finish() Outcome
	// SafeState describes the state the tool is left in when the run is
	// stopped early, e.g. "beam off, Faraday cup in".
	SafeState() string
}

// FieldError is one invalid recipe field.
type FieldError struct {
	Field   string `json:"field"`
	Value   any    `json:"value"`
	Allowed string `json:"allowed"`
	Message string `json:"message"`
}

func (e FieldError) Error() string {
	return fmt.Sprintf("%s: %s (got %v, allowed %s)", e.Field, e.Message, e.Value, e.Allowed)
}

// ValidationError lists every invalid field of a recipe.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid recipe: " + strings.Join(parts, "; ")
}

// Add records an invalid field.
func (e *ValidationError) Add(field string, value any, allowed, message string) {
	e.Fields = append(e.Fields, FieldError{Field: field, Value: value, Allowed: allowed, Message: message})
}

// Err returns e when it holds any field error, nil otherwise.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}
