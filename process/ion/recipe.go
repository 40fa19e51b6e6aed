package ion

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/spectra-fab/spectra/process"
)

// Recipe is an ion-implantation recipe, with the API's JSON field names
// (SPEC "Ion implantation"; seed §2.6).
type Recipe struct {
	Species         string  `json:"species"`
	EnergyKeV       float64 `json:"energy_kev"`
	DoseAtomsCm2    float64 `json:"dose_atoms_cm2"`
	TiltDeg         float64 `json:"tilt_deg"`
	TwistDeg        float64 `json:"twist_deg"`
	BeamCurrentMA   float64 `json:"beam_current_ma"`
	ScanSpeedMMS    float64 `json:"scan_speed_mm_s"`
	WaferDiameterMM float64 `json:"wafer_diameter_mm"`
	WaferID         string  `json:"wafer_id,omitempty"`
	LotID           string  `json:"lot_id,omitempty"`
	Comments        string  `json:"comments,omitempty"`
	ToolID          string  `json:"tool_id,omitempty"`
	Priority        int     `json:"priority,omitempty"`
	// SimulateFault asks for a fault for hardware-in-the-loop tests. It is
	// validated here; the run actor passes it to the engine as
	// process.Options.Fault for the jobs that should carry it.
	SimulateFault *process.Fault `json:"simulate_fault,omitempty"`
	// SimulateDisturbance asks for a beam-current offset and drift,
	// passed on as process.Options.Disturbance like SimulateFault.
	SimulateDisturbance *process.Disturbance `json:"simulate_disturbance,omitempty"`
}

// Defaults for fields a recipe may leave out. Tilt 7° and twist 0° are the
// seed's example (7° off the (100) normal is the usual anti-channeling tilt,
// physics reference §1.8); 50 mm/s and a 300 mm wafer are the seed's
// example too.
const (
	DefaultTiltDeg         = 7.0
	DefaultTwistDeg        = 0.0
	DefaultScanSpeedMMS    = 50.0
	DefaultWaferDiameterMM = 300.0
)

// Limits of the free-text fields (characters).
const (
	maxIDLen      = 64
	maxCommentLen = 2000
)

// Allowed ranges, as validation errors state them.
const (
	allowedSpecies  = "one of B, P, As, BF2, In, Sb"
	allowedEnergy   = "1–200 keV"
	allowedDose     = "1e11–1e16 atoms/cm²"
	allowedAngle    = "0–90°"
	allowedCurrent  = "0.1–50 mA"
	allowedScan     = "1–100 mm/s"
	allowedDiameter = "one of 100, 150, 200, 300 mm"
	allowedFault    = "one of transient, permanent, interlock"
	allowedProgress = "0–100 %"
)

var waferDiameters = []float64{100, 150, 200, 300}

// ParseRecipe decodes a recipe strictly and validates it. Malformed JSON, a
// field of the wrong type, an unknown or repeated field, a missing required
// field (species, energy_kev, dose_atoms_cm2, beam_current_ma) and every
// value out of range are all reported together in one
// *process.ValidationError, each naming its field. Absent optional fields
// take the Default values; JSON null counts as absent.
func ParseRecipe(data []byte) (Recipe, error) {
	r := Recipe{TiltDeg: DefaultTiltDeg, TwistDeg: DefaultTwistDeg, ScanSpeedMMS: DefaultScanSpeedMMS, WaferDiameterMM: DefaultWaferDiameterMM}
	verr := &process.ValidationError{}
	fields := map[string]any{
		"species": &r.Species, "energy_kev": &r.EnergyKeV, "dose_atoms_cm2": &r.DoseAtomsCm2,
		"tilt_deg": &r.TiltDeg, "twist_deg": &r.TwistDeg, "beam_current_ma": &r.BeamCurrentMA,
		"scan_speed_mm_s": &r.ScanSpeedMMS, "wafer_diameter_mm": &r.WaferDiameterMM,
		"wafer_id": &r.WaferID, "lot_id": &r.LotID, "comments": &r.Comments, "tool_id": &r.ToolID,
		"priority": &r.Priority,
	}
	var faultRaw, distRaw json.RawMessage
	fields["simulate_fault"] = &faultRaw
	fields["simulate_disturbance"] = &distRaw
	seen, bad := decodeStrict(data, "", fields, verr)
	for _, f := range []string{"species", "energy_kev", "dose_atoms_cm2", "beam_current_ma"} {
		if !seen[f] && !bad[f] && !bad[""] {
			verr.Add(f, nil, allowedFor(f), "required field missing")
			bad[f] = true
		}
	}
	if seen["simulate_fault"] && !bad["simulate_fault"] {
		f := &process.Fault{}
		s, b := decodeStrict(faultRaw, "simulate_fault.", map[string]any{"kind": &f.Kind, "at_progress_pct": &f.AtProgress, "message": &f.Message}, verr)
		maps.Copy(bad, b)
		if !b["simulate_fault."] {
			if !s["kind"] && !b["simulate_fault.kind"] {
				verr.Add("simulate_fault.kind", nil, allowedFault, "required field missing")
				bad["simulate_fault.kind"] = true
			}
			r.SimulateFault = f
		}
	}
	if seen["simulate_disturbance"] && !bad["simulate_disturbance"] {
		d := &process.Disturbance{}
		_, b := decodeStrict(distRaw, "simulate_disturbance.", map[string]any{
			"offset_pct": &d.OffsetPct, "drift_pct_per_min": &d.DriftPctPerMin, "start_s": &d.StartS,
			"kind": &d.Kind, "magnitude": &d.Magnitude, "duration_s": &d.DurationS,
		}, verr)
		maps.Copy(bad, b)
		if !b["simulate_disturbance."] {
			r.SimulateDisturbance = d
		}
	}
	if !bad[""] {
		for _, fe := range r.validate().Fields {
			if !bad[fe.Field] {
				verr.Fields = append(verr.Fields, fe)
			}
		}
	}
	if err := verr.Err(); err != nil {
		return Recipe{}, err
	}
	return r, nil
}

// Validate checks every field of r against the SPEC's ranges and returns a
// *process.ValidationError listing all violations, or nil.
func (r Recipe) Validate() error { return r.validate().Err() }

func (r Recipe) validate() *process.ValidationError {
	v := &process.ValidationError{}
	checkSpecies(v, r.Species)
	checkRange(v, "energy_kev", r.EnergyKeV, 1, 200, allowedEnergy)
	checkRange(v, "dose_atoms_cm2", r.DoseAtomsCm2, 1e11, 1e16, allowedDose)
	checkRange(v, "tilt_deg", r.TiltDeg, 0, 90, allowedAngle)
	checkRange(v, "twist_deg", r.TwistDeg, 0, 90, allowedAngle)
	checkRange(v, "beam_current_ma", r.BeamCurrentMA, 0.1, 50, allowedCurrent)
	checkRange(v, "scan_speed_mm_s", r.ScanSpeedMMS, 1, 100, allowedScan)
	if !slices.Contains(waferDiameters, r.WaferDiameterMM) {
		v.Add("wafer_diameter_mm", r.WaferDiameterMM, allowedDiameter, "not a supported wafer size")
	}
	for _, f := range []struct {
		name, val string
		max       int
	}{{"wafer_id", r.WaferID, maxIDLen}, {"lot_id", r.LotID, maxIDLen}, {"tool_id", r.ToolID, maxIDLen}, {"comments", r.Comments, maxCommentLen}} {
		if n := utf8.RuneCountInString(f.val); n > f.max || !utf8.ValidString(f.val) {
			v.Add(f.name, f.val, fmt.Sprintf("at most %d characters", f.max), "too long")
		}
	}
	if f := r.SimulateFault; f != nil {
		switch f.Kind {
		case process.FaultTransient, process.FaultPermanent, process.FaultInterlock:
		default:
			v.Add("simulate_fault.kind", string(f.Kind), allowedFault, "unknown fault kind")
		}
		checkRange(v, "simulate_fault.at_progress_pct", f.AtProgress, 0, 100, allowedProgress)
	}
	r.SimulateDisturbance.Validate(v, "simulate_disturbance.", process.KindIon)
	return v
}

func checkSpecies(v *process.ValidationError, s string) {
	switch {
	case s == "":
		v.Add("species", s, allowedSpecies, "required field missing")
	case !isSpecies(s):
		v.Add("species", s, allowedSpecies, "unknown species")
	}
}

func checkRange(v *process.ValidationError, field string, x, lo, hi float64, allowed string) {
	if !(x >= lo && x <= hi) { // also rejects NaN
		v.Add(field, x, allowed, "out of range")
	}
}

func allowedFor(field string) string {
	switch field {
	case "species":
		return allowedSpecies
	case "energy_kev":
		return allowedEnergy
	case "dose_atoms_cm2":
		return allowedDose
	case "tilt_deg", "twist_deg":
		return allowedAngle
	case "beam_current_ma":
		return allowedCurrent
	case "scan_speed_mm_s":
		return allowedScan
	case "wafer_diameter_mm":
		return allowedDiameter
	}
	return ""
}

// decodeStrict decodes the JSON object data into the destinations of fields
// by key, adding to verr (with prefix on field names) a malformed body,
// unknown, repeated and mistyped fields. It returns the keys present with a
// non-null value, and the fields it reported ("" for the whole body).
func decodeStrict(data []byte, prefix string, fields map[string]any, verr *process.ValidationError) (seen, bad map[string]bool) {
	seen, bad = map[string]bool{}, map[string]bool{}
	body := strings.TrimSuffix(prefix, ".")
	if body == "" {
		body = "body"
	}
	fail := func(err error) {
		field, msg := body, "malformed JSON"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			msg = fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
			if k := lastKey(data[:min(int(se.Offset), len(data))]); k != "" {
				field = prefix + k
			}
		} else if errors.Is(err, errExpectObject) {
			msg = "must be a JSON object"
		} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			msg = "malformed JSON: unexpected end of input"
			if k := lastKey(data); k != "" {
				field = prefix + k
			}
		} else {
			msg = fmt.Sprintf("malformed JSON: %v", err)
		}
		verr.Add(field, nil, "a JSON object", msg)
		bad[prefix] = true
		bad[field] = true
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		fail(err)
		return seen, bad
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		fail(errExpectObject)
		return seen, bad
	}
	present := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			fail(err)
			return seen, bad
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			fail(err)
			return seen, bad
		}
		name := prefix + key
		dst, known := fields[key]
		switch {
		case !known:
			verr.Add(name, string(raw), "a known recipe field", "unknown field")
			bad[name] = true
			continue
		case present[key]:
			verr.Add(name, string(raw), "one occurrence", "field repeated")
			bad[name] = true
			continue
		}
		present[key] = true
		if string(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			verr.Add(name, string(raw), typeOf(dst), "wrong type: want "+typeOf(dst))
			bad[name] = true
			continue
		}
		seen[key] = true
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		fail(err)
		return seen, bad
	}
	if _, err := dec.Token(); err == nil {
		fail(errors.New("data after the JSON object"))
	}
	return seen, bad
}

var errExpectObject = errors.New("not a JSON object")

var keyPattern = regexp.MustCompile(`"([^"\\]{1,64})"\s*:`)

// lastKey returns the last object key before the end of data, to name the
// field near a syntax error.
func lastKey(data []byte) string {
	m := keyPattern.FindAllSubmatch(data, -1)
	if len(m) == 0 {
		return ""
	}
	return string(m[len(m)-1][1])
}

func typeOf(dst any) string {
	switch dst.(type) {
	case *string, *process.FaultKind, *process.DisturbanceKind:
		return "string"
	case *float64:
		return "number"
	case *int:
		return "integer"
	case *json.RawMessage:
		return "object"
	}
	return "value"
}
