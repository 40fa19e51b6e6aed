package rtp

import (
	"fmt"
	"math"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/spc"
)

// Monitor design (docs/monitoring.md). Limits are learned from the run's
// own data (baselines of its first settled hold seconds); the only model
// the monitor uses is the controller's own set-point model (the steady
// lamp power a temperature needs), never the simulator's noise or its
// injected constants. Charts run where they are valid: ramps are not
// charted (the wafer cannot follow a ramp-down faster than it radiates),
// holds only once settled, and the pyrometer only above 500 °C, where it
// is reliable (physics reference §4.2).
const (
	// alarmEveryS rate-limits alarms: one per source, parameter and rule
	// per this much process time.
	alarmEveryS = 10.0
	// maxAlarms caps the alarms of one run.
	maxAlarms = 50
	// trackingLimitC raises an FDC alarm when a settled hold drifts this
	// far from its set-point (an engineering limit, not a statistic).
	trackingLimitC = 10.0
	// settleBandC arms a hold's monitoring once its one-second mean error
	// is within this band.
	settleBandC = 2.0

	residBaselineN = 8   // settled hold seconds ≥ 600 °C that fix the lamp-residual chart
	residL         = 6.0 // its Shewhart limit, σ̂
	residK, residH = 0.5, 8.0
	residMinSigPct = 0.05 // floor of σ̂: the lamp driver's resolution, % lamp power
	residDeltaPct  = 1.0  // smallest residual shift worth an alarm (k = δ/2σ̂), % lamp power (≈1 kW)
	jumpBaselineN  = 20   // 100 ms error increments in settled holds that fix the jump chart
	jumpL          = 8.0  // a reading jump beyond 8 σ̂ of the increments is a sensor step
	jumpMinSigC    = 0.05
	sensorQuietS   = 10.0 // after a sensor step, the loop's transient is the step's
	pyroValidC     = 500.0
	flowBaselineN  = 5   // one-second flow means that fix the gas-flow chart
	flowL          = 6.0 // its Shewhart limit, σ̂
	flowMinSigPct  = 0.5 // floor of σ̂: a mass-flow controller's resolution, % of the flow
)

// monitor is one run's RTP fault detection: the tracking of settled
// holds, sensor steps in the pyrometer reading, the lamp-power residual
// against the set-point model, the gas flow and lamp saturation.
type monitor struct {
	resid, jump, flow *spc.Learned
	prevErr           float64
	prevOK            bool
	sensorAt          float64 // time of the last sensor-step alarm, or −∞
	sensorSign        int
}

func newMonitor() *monitor {
	resid := spc.NewLearned(residBaselineN, residL, residK, residH, residMinSigPct)
	resid.Delta = residDeltaPct
	return &monitor{
		resid:    resid,
		jump:     spc.NewLearned(jumpBaselineN, jumpL, 0, math.Inf(1), jumpMinSigC),
		flow:     spc.NewLearned(flowBaselineN, flowL, 0, math.Inf(1), 0),
		sensorAt: math.Inf(-1),
	}
}

// sample checks one 100 ms sample of a settled hold at or above 500 °C:
// a step of the reading that the wafer cannot make in 100 ms (its thermal
// time constant is seconds) is a sensor step. The reading jumping up is
// named a pyrometer offset, jumping down an emissivity change: one
// pyrometer cannot tell a −x °C offset from a rise of emissivity (see
// docs/monitoring.md).
func (m *monitor) sample(errC float64, ok bool, t, y float64) *process.Alarm {
	defer func() { m.prevErr, m.prevOK = errC, ok }()
	if !ok || !m.prevOK {
		return nil
	}
	p := m.jump.Add(errC - m.prevErr)
	if !p.Ready || p.Step == 0 || t-m.sensorAt < sensorQuietS {
		return nil
	}
	m.sensorAt, m.sensorSign = t, -p.Step
	step := m.prevErr - errC // the reading's jump
	if p.Step < 0 {
		return &process.Alarm{Source: process.SourceFDC, Parameter: KeyMeasured, Rule: process.RulePyrometer, Severity: process.SeverityCritical,
			Value: y, TimeS: t, Message: fmt.Sprintf("%s: the pyrometer reading jumped %+.1f °C in 100 ms in a settled hold (%.0f σ̂ of its increments; the wafer cannot move that fast): pyrometer offset, the controller now holds the wafer that much colder",
				process.RulePyrometer, step, math.Abs(p.Z))}
	}
	return &process.Alarm{Source: process.SourceFDC, Parameter: KeyMeasured, Rule: process.RuleEmissivity, Severity: process.SeverityCritical,
		Value: y, TimeS: t, Message: fmt.Sprintf("%s: the pyrometer reading dropped %.1f °C in 100 ms in a settled hold (%.0f σ̂ of its increments): the wafer's emissivity changed under the pyrometer's assumed one (or the pyrometer lost signal); the controller now holds the wafer hotter",
			process.RuleEmissivity, -step, math.Abs(p.Z))}
}

// residual checks a settled hold second ≥ 600 °C: the lamp power against
// the set-point model's steady power for the same temperature, in % lamp
// power (absolute: the loop's noise on it does not scale with the power).
// Lamps that need more power than before for the same reading are
// degrading; a shift right after a sensor step is the sensor's.
func (m *monitor) residual(residPct, t float64) *process.Alarm {
	p := m.resid.Add(residPct)
	if !p.Ready || p.Step == 0 && p.Drift == 0 {
		return nil
	}
	if !math.IsInf(m.sensorAt, -1) {
		return nil // after a sensor step the residual moves with the wafer temperature
	}
	up := p.Step > 0 || p.Drift > 0
	c := m.resid.Center()
	if up {
		return &process.Alarm{Source: process.SourceFDC, Parameter: "lamp_power_residual_pct", Rule: process.RuleLampDegraded, Severity: process.SeverityWarning,
			Value: residPct, TimeS: t, Message: fmt.Sprintf("%s: the lamps need %.1f %% lamp power more than the set-point model for the same temperature (run baseline %+.1f %%, %.1f σ̂): lamp zone degradation",
				process.RuleLampDegraded, residPct, c, p.Z)}
	}
	return &process.Alarm{Source: process.SourceFDC, Parameter: "lamp_power_residual_pct", Rule: "LAMP_RESIDUAL", Severity: process.SeverityWarning,
		Value: residPct, TimeS: t, Message: fmt.Sprintf("LAMP_RESIDUAL: the lamps need %.1f %% lamp power less than the set-point model for the same temperature (run baseline %+.1f %%, %.1f σ̂): the pyrometer reads high or the lamps were replaced",
			-residPct, c, p.Z)}
}

// gas checks a one-second mean of the total gas flow against the run's
// first seconds.
func (m *monitor) gas(flowSLM, setSLM, t float64) *process.Alarm {
	if setSLM <= 0 {
		return nil
	}
	if m.flow.MinSigma == 0 {
		m.flow.MinSigma = flowMinSigPct / 100 * setSLM
	}
	p := m.flow.Add(flowSLM)
	if !p.Ready || p.Step == 0 && p.Drift == 0 {
		return nil
	}
	return &process.Alarm{Source: process.SourceFDC, Parameter: "gas_flow_slm", Rule: process.RuleGasFlow, Severity: process.SeverityCritical,
		Value: flowSLM, TimeS: t, Message: fmt.Sprintf("%s: gas flow %.2f slm against %.2f slm set (%+.0f %%): mass-flow controller or valve failure",
			process.RuleGasFlow, flowSLM, setSLM, 100*(flowSLM/setSLM-1))}
}
