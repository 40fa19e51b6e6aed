package rtp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/silicon"
)

// Recipe limits (the specification's "RTP"; seed §2.5).
const (
	MinTempC         = 400.0  // lowest segment target
	MaxTempC         = 1200.0 // highest segment or initial temperature
	AmbientC         = 20.0   // lowest initial temperature
	MaxRampUpCS      = 100.0  // fastest ramp up, °C/s
	MaxRampDownCS    = 50.0   // fastest ramp down, °C/s
	MaxSegmentS      = 300.0  // longest hold of one segment
	MaxSegments      = 50     // most segments in a recipe
	MaxN2SLM         = 20.0
	MaxO2SLM         = 5.0
	MaxGain          = 100.0 // bound on each of pid_kp, pid_ki, pid_kd
	MinMPCHorizon    = 13    // the MPC's last blocked move starts at step 12
	MaxMPCHorizon    = 100
	MaxMPCMoveWeight = 1e4
	MaxProcessTimeS  = 7200 // longest recipe (ramps and holds), the 2 h soft limit
)

// Controller types.
const (
	ControllerPID = "pid"
	ControllerMPC = "mpc"
)

// Default values of optional recipe fields: the seed's example recipe.
const (
	DefaultInitialC = 25.0
	DefaultN2SLM    = 10.0
	DefaultKp       = 5.0
	DefaultKi       = 0.5
	DefaultKd       = 1.0
)

// Segment is one step of a temperature profile: ramp from the current
// set-point to TargetC at RampRateCS (°C/s), then hold TargetC for
// DurationS. A segment without a ramp rate is a step, which the set-point
// generator ramps at the tool's rated limit (100 °C/s up, 50 °C/s down):
// the tool never asks for a rate it cannot deliver, so a step is never
// refused and never exceeds the ramp limits.
type Segment struct {
	TargetC    float64  `json:"target_temp_c"`
	DurationS  float64  `json:"duration_s"`
	RampRateCS *float64 `json:"ramp_rate_c_s,omitempty"`
}

// ImplantContext describes the implant the anneal activates. TiltDeg is
// the implant's tilt (absent: the implanter's default 7°).
type ImplantContext struct {
	Species     string   `json:"species"`
	EnergyKeV   float64  `json:"energy_kev"`
	DoseAtomsCm float64  `json:"dose_atoms_cm2"`
	TiltDeg     *float64 `json:"tilt_deg,omitempty"`
}

func (c ImplantContext) tilt() float64 {
	if c.TiltDeg == nil {
		return ion.DefaultTiltDeg
	}
	return *c.TiltDeg
}

// SimulateFault asks the simulator to inject a fault (HIL testing).
type SimulateFault struct {
	Kind       process.FaultKind `json:"kind"`
	AtProgress float64           `json:"at_progress_pct"`
}

// Recipe is an RTP recipe with the API's JSON names.
type Recipe struct {
	Segments       []Segment `json:"segments"`
	InitialC       float64   `json:"initial_temp_c"`
	N2SLM          float64   `json:"n2_flow_slm"`
	O2SLM          float64   `json:"o2_flow_slm"`
	ControllerType string    `json:"controller_type"`
	Kp             float64   `json:"pid_kp"`
	Ki             float64   `json:"pid_ki"`
	Kd             float64   `json:"pid_kd"`
	// MPCHorizon and MPCMoveWeight, when set, replace the MPC's default
	// prediction horizon Np (steps of 100 ms) and move suppression λ
	// (°C²/%²); the tuner returns them for controller_type mpc.
	MPCHorizon          int                  `json:"mpc_horizon,omitempty"`
	MPCMoveWeight       float64              `json:"mpc_move_weight,omitempty"`
	WaferID             string               `json:"wafer_id,omitempty"`
	Implant             *ImplantContext      `json:"ion_implant_context,omitempty"`
	LotID               string               `json:"lot_id,omitempty"`
	Comments            string               `json:"comments,omitempty"`
	ToolID              string               `json:"tool_id,omitempty"`
	Priority            int                  `json:"priority,omitempty"`
	SimulateFault       *SimulateFault       `json:"simulate_fault,omitempty"`
	SimulateDisturbance *process.Disturbance `json:"simulate_disturbance,omitempty"`
}

// NewRecipe returns a recipe with the defaults of every optional field and
// no segments.
func NewRecipe() Recipe {
	return Recipe{
		InitialC:       DefaultInitialC,
		N2SLM:          DefaultN2SLM,
		ControllerType: ControllerPID,
		Kp:             DefaultKp,
		Ki:             DefaultKi,
		Kd:             DefaultKd,
	}
}

// ParseRecipe decodes a recipe strictly (unknown fields, wrong types,
// malformed JSON and trailing data are refused), fills the defaults of
// absent optional fields (initial 25 °C, N2 10 slm, O2 0, PID 5/0.5/1.0)
// and validates it. Every problem is reported at once in a
// *process.ValidationError whose fields name the path, such as
// "segments[2].ramp_rate_c_s". Thermal-budget warnings are not errors: ask
// Recipe.Warnings for them.
func ParseRecipe(data []byte) (Recipe, error) {
	r := NewRecipe()
	var ve process.ValidationError
	decodeRecipe(data, &r, "", &ve, true)
	if err := ve.Err(); err != nil {
		return Recipe{}, err
	}
	if err := r.Validate(); err != nil {
		return Recipe{}, err
	}
	return r, nil
}

// decodeRecipe decodes data into r field by field, recording every
// malformed or unknown field in ve under prefix. requireSegments says
// whether segments must be present.
func decodeRecipe(data []byte, r *Recipe, prefix string, ve *process.ValidationError, requireSegments bool) {
	obj, ok := decodeObject(data, prefix, ve)
	if !ok {
		return
	}
	if requireSegments {
		if raw, ok := obj["segments"]; !ok || isNull(raw) {
			ve.Add(join(prefix, "segments"), nil, "1–50 segments", "required")
		}
	}
	for _, key := range sortedKeys(obj) {
		raw := obj[key]
		path := join(prefix, key)
		if isNull(raw) {
			continue // null means absent
		}
		switch key {
		case "segments":
			var items []json.RawMessage
			if !decodeValue(raw, &items, path, "array of segments", ve) {
				continue
			}
			r.Segments = make([]Segment, 0, len(items))
			for i, item := range items {
				r.Segments = append(r.Segments, decodeSegment(item, fmt.Sprintf("%s[%d]", path, i), ve))
			}
		case "initial_temp_c":
			decodeValue(raw, &r.InitialC, path, "number", ve)
		case "n2_flow_slm":
			decodeValue(raw, &r.N2SLM, path, "number", ve)
		case "o2_flow_slm":
			decodeValue(raw, &r.O2SLM, path, "number", ve)
		case "controller_type":
			decodeValue(raw, &r.ControllerType, path, "string", ve)
		case "pid_kp":
			decodeValue(raw, &r.Kp, path, "number", ve)
		case "pid_ki":
			decodeValue(raw, &r.Ki, path, "number", ve)
		case "pid_kd":
			decodeValue(raw, &r.Kd, path, "number", ve)
		case "mpc_horizon":
			decodeValue(raw, &r.MPCHorizon, path, "integer", ve)
		case "mpc_move_weight":
			decodeValue(raw, &r.MPCMoveWeight, path, "number", ve)
		case "wafer_id":
			decodeValue(raw, &r.WaferID, path, "string", ve)
		case "lot_id":
			decodeValue(raw, &r.LotID, path, "string", ve)
		case "comments":
			decodeValue(raw, &r.Comments, path, "string", ve)
		case "tool_id":
			decodeValue(raw, &r.ToolID, path, "string", ve)
		case "priority":
			decodeValue(raw, &r.Priority, path, "integer", ve)
		case "ion_implant_context":
			r.Implant = decodeImplant(raw, path, ve)
		case "simulate_fault":
			r.SimulateFault = decodeFault(raw, path, ve)
		case "simulate_disturbance":
			r.SimulateDisturbance = decodeDisturbance(raw, path, ve)
		default:
			ve.Add(path, nil, "a known recipe field", "unknown field")
		}
	}
}

func decodeSegment(data json.RawMessage, path string, ve *process.ValidationError) Segment {
	var s Segment
	obj, ok := decodeObject(data, path, ve)
	if !ok {
		return s
	}
	for _, key := range []string{"target_temp_c", "duration_s"} {
		if raw, ok := obj[key]; !ok || isNull(raw) {
			ve.Add(join(path, key), nil, "a number", "required")
		}
	}
	for _, key := range sortedKeys(obj) {
		raw, p := obj[key], join(path, key)
		if isNull(raw) {
			continue
		}
		switch key {
		case "target_temp_c":
			decodeValue(raw, &s.TargetC, p, "number", ve)
		case "duration_s":
			decodeValue(raw, &s.DurationS, p, "number", ve)
		case "ramp_rate_c_s":
			var v float64
			if decodeValue(raw, &v, p, "number", ve) {
				s.RampRateCS = &v
			}
		default:
			ve.Add(p, nil, "target_temp_c, duration_s, ramp_rate_c_s", "unknown field")
		}
	}
	return s
}

func decodeImplant(data json.RawMessage, path string, ve *process.ValidationError) *ImplantContext {
	obj, ok := decodeObject(data, path, ve)
	if !ok {
		return nil
	}
	var c ImplantContext
	for _, key := range sortedKeys(obj) {
		raw, p := obj[key], join(path, key)
		if isNull(raw) {
			continue
		}
		switch key {
		case "species":
			decodeValue(raw, &c.Species, p, "string", ve)
		case "energy_kev":
			decodeValue(raw, &c.EnergyKeV, p, "number", ve)
		case "dose_atoms_cm2":
			decodeValue(raw, &c.DoseAtomsCm, p, "number", ve)
		case "tilt_deg":
			var v float64
			if decodeValue(raw, &v, p, "number", ve) {
				c.TiltDeg = &v
			}
		default:
			ve.Add(p, nil, "species, energy_kev, dose_atoms_cm2, tilt_deg", "unknown field")
		}
	}
	return &c
}

func decodeFault(data json.RawMessage, path string, ve *process.ValidationError) *SimulateFault {
	obj, ok := decodeObject(data, path, ve)
	if !ok {
		return nil
	}
	var f SimulateFault
	for _, key := range sortedKeys(obj) {
		raw, p := obj[key], join(path, key)
		if isNull(raw) {
			continue
		}
		switch key {
		case "kind":
			var s string
			if decodeValue(raw, &s, p, "string", ve) {
				f.Kind = process.FaultKind(s)
			}
		case "at_progress_pct":
			decodeValue(raw, &f.AtProgress, p, "number", ve)
		default:
			ve.Add(p, nil, "kind, at_progress_pct", "unknown field")
		}
	}
	return &f
}

func decodeDisturbance(data json.RawMessage, path string, ve *process.ValidationError) *process.Disturbance {
	obj, ok := decodeObject(data, path, ve)
	if !ok {
		return nil
	}
	var d process.Disturbance
	for _, key := range sortedKeys(obj) {
		raw, p := obj[key], join(path, key)
		if isNull(raw) {
			continue
		}
		switch key {
		case "offset_pct":
			decodeValue(raw, &d.OffsetPct, p, "number", ve)
		case "drift_pct_per_min":
			decodeValue(raw, &d.DriftPctPerMin, p, "number", ve)
		case "start_s":
			decodeValue(raw, &d.StartS, p, "number", ve)
		case "kind":
			decodeValue(raw, &d.Kind, p, "string", ve)
		case "magnitude":
			decodeValue(raw, &d.Magnitude, p, "number", ve)
		case "duration_s":
			decodeValue(raw, &d.DurationS, p, "number", ve)
		default:
			ve.Add(p, nil, "offset_pct, drift_pct_per_min, start_s, kind, magnitude, duration_s", "unknown field")
		}
	}
	return &d
}

// decodeObject decodes one JSON object (and nothing after it) into its
// raw members.
func decodeObject(data []byte, path string, ve *process.ValidationError) (map[string]json.RawMessage, bool) {
	field := path
	if field == "" {
		field = "recipe"
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			ve.Add(field, nil, "a JSON object", fmt.Sprintf("malformed JSON at byte %d", se.Offset))
		case errors.As(err, &te):
			ve.Add(field, te.Value, "a JSON object", "wrong type")
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			ve.Add(field, nil, "a JSON object", "malformed JSON: unexpected end")
		default:
			ve.Add(field, nil, "a JSON object", "malformed JSON")
		}
		return nil, false
	}
	if obj == nil {
		ve.Add(field, nil, "a JSON object", "null")
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		ve.Add(field, nil, "a single JSON object", "trailing data after the object")
		return nil, false
	}
	return obj, true
}

// decodeValue decodes raw into v, recording a type error under path.
func decodeValue(raw json.RawMessage, v any, path, want string, ve *process.ValidationError) bool {
	if err := json.Unmarshal(raw, v); err != nil {
		ve.Add(path, string(raw), want, "wrong type")
		return false
	}
	return true
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// sortedKeys returns m's keys in order, so errors come out in a stable
// order.
func sortedKeys(m map[string]json.RawMessage) []string {
	return slices.Sorted(maps.Keys(m))
}

// Validate checks every field against the recipe limits and returns a
// *process.ValidationError listing every violation, or nil.
//
// A segment's ramp direction is decided against the previous segment's
// target (the initial temperature for the first): ramp_rate_c_s must be in
// (0, 100] °C/s, and at most 50 °C/s when the segment goes down. A rate
// faster than allowed is refused, never clipped. A step (no ramp rate)
// runs at the limit rate, so it is always valid.
func (r Recipe) Validate() error {
	var ve process.ValidationError
	finite := func(field string, v float64) bool {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			ve.Add(field, v, "a finite number", "not finite")
			return false
		}
		return true
	}
	rangeCheck := func(field string, v, lo, hi float64, unit string) {
		if finite(field, v) && (v < lo || v > hi) {
			ve.Add(field, v, fmt.Sprintf("%s–%s %s", num(lo), num(hi), unit), "out of range")
		}
	}

	switch n := len(r.Segments); {
	case n == 0:
		ve.Add("segments", n, "1–50 segments", "at least one segment is required")
	case n > MaxSegments:
		ve.Add("segments", n, "1–50 segments", "too many segments")
	}
	rangeCheck("initial_temp_c", r.InitialC, AmbientC, MaxTempC, "°C")
	prev := r.InitialC
	for i, s := range r.Segments {
		p := fmt.Sprintf("segments[%d]", i)
		rangeCheck(p+".target_temp_c", s.TargetC, MinTempC, MaxTempC, "°C")
		rangeCheck(p+".duration_s", s.DurationS, 0, MaxSegmentS, "s")
		if s.RampRateCS != nil {
			rate := *s.RampRateCS
			field := p + ".ramp_rate_c_s"
			if finite(field, rate) {
				down := s.TargetC < prev
				switch {
				case rate <= 0:
					ve.Add(field, rate, "> 0 and ≤ 100 °C/s up, ≤ 50 °C/s down", "ramp rate must be positive")
				case down && rate > MaxRampDownCS:
					ve.Add(field, rate, "≤ 50 °C/s ramping down", fmt.Sprintf("ramp down from %s to %s °C faster than allowed", num(prev), num(s.TargetC)))
				case rate > MaxRampUpCS:
					ve.Add(field, rate, "≤ 100 °C/s ramping up", "ramp faster than allowed")
				}
			}
		}
		if !math.IsNaN(s.TargetC) {
			prev = s.TargetC
		}
	}
	rangeCheck("n2_flow_slm", r.N2SLM, 0, MaxN2SLM, "slm")
	rangeCheck("o2_flow_slm", r.O2SLM, 0, MaxO2SLM, "slm")
	switch r.ControllerType {
	case ControllerPID, ControllerMPC:
	default:
		ve.Add("controller_type", r.ControllerType, "pid | mpc", "unknown controller type")
	}
	rangeCheck("pid_kp", r.Kp, 0, MaxGain, "")
	rangeCheck("pid_ki", r.Ki, 0, MaxGain, "")
	rangeCheck("pid_kd", r.Kd, 0, MaxGain, "")
	if r.MPCHorizon != 0 && (r.MPCHorizon < MinMPCHorizon || r.MPCHorizon > MaxMPCHorizon) {
		ve.Add("mpc_horizon", r.MPCHorizon, fmt.Sprintf("%d–%d steps (0: default 30)", MinMPCHorizon, MaxMPCHorizon), "out of range")
	}
	rangeCheck("mpc_move_weight", r.MPCMoveWeight, 0, MaxMPCMoveWeight, "°C²/%² (0: default 20)")
	if r.ControllerType == ControllerPID && r.Kp == 0 && r.Ki == 0 {
		ve.Add("pid_kp", r.Kp, "pid_kp > 0 or pid_ki > 0", "a PID needs proportional or integral action")
	}
	if c := r.Implant; c != nil {
		if !silicon.IsDopant(c.Species) {
			ve.Add("ion_implant_context.species", c.Species, "B, P, As, BF2, In, Sb", "unknown species")
		}
		rangeCheck("ion_implant_context.energy_kev", c.EnergyKeV, 1, 200, "keV")
		rangeCheck("ion_implant_context.dose_atoms_cm2", c.DoseAtomsCm, 1e11, 1e16, "cm⁻²")
		if c.TiltDeg != nil {
			rangeCheck("ion_implant_context.tilt_deg", *c.TiltDeg, 0, 90, "°")
		}
	}
	if f := r.SimulateFault; f != nil {
		switch f.Kind {
		case process.FaultTransient, process.FaultPermanent, process.FaultInterlock:
		default:
			ve.Add("simulate_fault.kind", string(f.Kind), "transient | permanent | interlock", "unknown fault kind")
		}
		rangeCheck("simulate_fault.at_progress_pct", f.AtProgress, 0, 100, "%")
	}
	r.SimulateDisturbance.Validate(&ve, "simulate_disturbance.", process.KindRTP)
	if err := ve.Err(); err != nil {
		return err
	}
	if total := NewProfile(r.InitialC, r.Segments).TotalS; total > MaxProcessTimeS {
		ve.Add("segments", total, "≤ 7200 s of ramps and holds", "recipe too long")
	}
	return ve.Err()
}

// num formats a limit without trailing zeros.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
