package process

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// DisturbanceKind names a disturbance of the catalogue (docs/monitoring.md).
type DisturbanceKind string

// The disturbance catalogue. Ion implanter:
const (
	BeamCurrentStep  DisturbanceKind = "beam_current_step"  // magnitude: % of the recipe current (±)
	BeamCurrentDrift DisturbanceKind = "beam_current_drift" // magnitude: % of the recipe current per minute
	GlitchStorm      DisturbanceKind = "glitch_storm"       // magnitude: arc-down glitches per minute
	PressureBurst    DisturbanceKind = "pressure_burst"     // magnitude: outgassing burst, × base pressure
	ScanSpeedError   DisturbanceKind = "scan_speed_error"   // magnitude: % error of the slow-scan stage speed
)

// RTP:
const (
	LampDegradation  DisturbanceKind = "lamp_degradation"  // magnitude: % change of lamp efficiency (−10: a zone lost a tenth)
	PyrometerOffset  DisturbanceKind = "pyrometer_offset"  // magnitude: °C added to the pyrometer reading
	EmissivityChange DisturbanceKind = "emissivity_change" // magnitude: % change of the wafer's emissivity
	GasFlowLoss      DisturbanceKind = "gas_flow_loss"     // magnitude: % of the set gas flow lost
)

// DisturbanceSpec describes one catalogue entry: what it does, the alarm
// rule that names it, its default magnitude and the magnitudes allowed.
type DisturbanceSpec struct {
	Kind        DisturbanceKind
	Process     Kind
	Unit        string
	Default     float64 // magnitude used when a request gives 0
	Min, Max    float64 // allowed magnitudes
	Rule        string  // the alarm rule that names this disturbance
	Description string
}

// Alarm rules that name a catalogue disturbance.
const (
	RuleBeamStep      = "BEAM_STEP"
	RuleBeamDrift     = "BEAM_DRIFT"
	RuleGlitchStorm   = "GLITCH_STORM"
	RulePressureBurst = "PRESSURE_BURST"
	RuleScanSpeed     = "SCAN_SPEED"
	RuleLampDegraded  = "LAMP_DEGRADATION"
	RulePyrometer     = "PYROMETER_OFFSET"
	RuleEmissivity    = "EMISSIVITY_CHANGE"
	RuleGasFlow       = "GAS_FLOW"
)

// Disturbances is the catalogue, ion first.
var Disturbances = []DisturbanceSpec{
	{BeamCurrentStep, KindIon, "%", -5, -50, 50, RuleBeamStep, "the source's beam current steps by magnitude % of the recipe current"},
	{BeamCurrentDrift, KindIon, "%/min", -3, -30, 30, RuleBeamDrift, "the beam current drifts by magnitude % of the recipe current per minute"},
	{GlitchStorm, KindIon, "1/min", 30, 1, 300, RuleGlitchStorm, "arc-down glitches (beam lost 0.1–0.3 s) at magnitude per minute on top of the normal rate"},
	{PressureBurst, KindIon, "× base", 10, 1, 1000, RulePressureBurst, "an outgassing burst adds magnitude × the base pressure for duration_s (default 5 s)"},
	{ScanSpeedError, KindIon, "%", 5, -50, 50, RuleScanSpeed, "the slow-scan stage moves magnitude % faster than the servo commands"},
	{LampDegradation, KindRTP, "%", -10, -90, -1, RuleLampDegraded, "a lamp zone degrades: the lamps deliver magnitude % less power for the same command"},
	{PyrometerOffset, KindRTP, "°C", 15, -100, 100, RulePyrometer, "the pyrometer reads magnitude °C off (window coating, calibration step)"},
	{EmissivityChange, KindRTP, "%", -10, -50, 50, RuleEmissivity, "the wafer's emissivity changes by magnitude % (film, backside); the pyrometer keeps its old emissivity, so it reads the wafer wrong"},
	{GasFlowLoss, KindRTP, "%", 80, 5, 100, RuleGasFlow, "magnitude % of the set gas flow is lost (MFC or valve failure)"},
}

// DisturbanceSpecOf returns the catalogue entry of k.
func DisturbanceSpecOf(k DisturbanceKind) (DisturbanceSpec, bool) {
	i := slices.IndexFunc(Disturbances, func(s DisturbanceSpec) bool { return s.Kind == k })
	if i < 0 {
		return DisturbanceSpec{}, false
	}
	return Disturbances[i], true
}

// Active reports whether the disturbance acts at process time t: from
// StartS on, for DurationS when that is positive.
func (d *Disturbance) Active(t float64) bool {
	if d == nil || t < d.StartS {
		return false
	}
	return d.DurationS <= 0 || t < d.StartS+d.DurationS
}

// Value returns the catalogue magnitude of the disturbance: Magnitude, or
// the kind's default when it is 0.
func (d *Disturbance) Value() float64 {
	if d.Magnitude != 0 {
		return d.Magnitude
	}
	s, _ := DisturbanceSpecOf(d.Kind)
	return s.Default
}

// Is reports whether d is a catalogue disturbance of kind k.
func (d *Disturbance) Is(k DisturbanceKind) bool { return d != nil && d.Kind == k }

// Validate records every invalid field of d in ve under prefix (for
// example "simulate_disturbance."), for a disturbance of a kind-p process.
func (d *Disturbance) Validate(ve *ValidationError, prefix string, p Kind) {
	if d == nil {
		return
	}
	check := func(field string, x, lo, hi float64, allowed string) {
		if !(x >= lo && x <= hi) {
			ve.Add(prefix+field, x, allowed, "out of range")
		}
	}
	lo := -100.0 // a beam can be lost entirely; lamps cannot lose all their power and still heat
	if p == KindRTP {
		lo = -90
	}
	check("offset_pct", d.OffsetPct, lo, 100, num(lo)+"–100 %")
	check("drift_pct_per_min", d.DriftPctPerMin, -100, 100, "-100–100 %/min")
	check("start_s", d.StartS, 0, 86400, "0–86400 s")
	check("duration_s", d.DurationS, 0, 86400, "0–86400 s (0: until the end)")
	if d.Kind == "" {
		if d.Magnitude != 0 {
			ve.Add(prefix+"magnitude", d.Magnitude, "0 without a kind", "a magnitude needs a kind")
		}
		return
	}
	var names []string
	for _, s := range Disturbances {
		if s.Process == p {
			names = append(names, string(s.Kind))
		}
	}
	s, ok := DisturbanceSpecOf(d.Kind)
	if !ok || s.Process != p {
		ve.Add(prefix+"kind", string(d.Kind), strings.Join(names, " | "), fmt.Sprintf("unknown %s disturbance", p))
		return
	}
	if m := d.Magnitude; m != 0 && !(m >= s.Min && m <= s.Max) || math.IsNaN(m) {
		ve.Add(prefix+"magnitude", m, fmt.Sprintf("%s–%s %s (0: default %s)", num(s.Min), num(s.Max), s.Unit, num(s.Default)), "out of range")
	}
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
