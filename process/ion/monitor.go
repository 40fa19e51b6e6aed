package ion

import (
	"fmt"
	"math"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/spc"
)

// Monitor design (docs/monitoring.md). Every limit is learned from the
// run's own data or is an engineering tolerance of the tool; none comes
// from the simulator's noise or ageing constants.
const (
	monWarmupS     = 2   // one-second points skipped while the beam and the outgassing settle
	monBaselineN   = 10  // one-second points that fix each chart's centre and first σ̂
	beamStepL      = 6.0 // Shewhart limit of the beam chart, σ̂
	beamDriftPct   = 0.5 // smallest beam shift worth a drift alarm, % of the baseline (k = δ/2σ̂)
	beamDriftH     = 5.0 // CUSUM decision interval, σ̂
	beamMinSigPct  = 0.02
	beamTrackS     = 60.0 // the beam chart's centre follows in-control seconds over this time
	pressureL      = 6.0  // Shewhart limit of the log-pressure chart, σ̂
	pressureMinSig = 0.1  // floor of σ̂(ln p): a burst is a ≥ 60 % rise, not gauge noise
	glitchWindowS  = 20.0
	glitchStormN   = 4   // beam losses within glitchWindowS that make a storm
	scanTolPct     = 1.0 // per-pass dose tolerance of the scan servo, %
	maxAlarms      = 20  // per run
)

// monitor watches one implant: the beam current and the chamber pressure
// on one-second means against limits learned in the run's first seconds,
// beam losses (glitches) in a sliding window, and each completed pass's
// dose against the servo's plan for it.
type monitor struct {
	beam, press *spc.Learned
	points      int
	glitchT     []float64
	stormUntil  float64
	fired       map[string]bool
	count       map[process.AlarmSource]int
	sent        int
	passDev     []float64 // each completed pass's dose against its plan, %
	withinSum   float64   // pooled within-second variance of the beam mean (baseline)
	withinN     int
}

func newMonitor() *monitor {
	beam := spc.NewLearned(monBaselineN, beamStepL, spc.DefaultK, beamDriftH, 0)
	beam.Track = beamTrackS
	press := spc.NewLearned(monBaselineN, pressureL, 0, math.Inf(1), pressureMinSig)
	return &monitor{beam: beam, press: press, fired: map[string]bool{}, count: map[process.AlarmSource]int{}}
}

// second feeds the one-second means of the beam current (mA, glitches
// excluded) with the variance of that mean estimated from the second's
// own 100 ms samples, and of the pressure (Torr).
func (m *monitor) second(beamMA, withinVar, pressureTorr, t float64) []process.Alarm {
	m.points++
	if m.points <= monWarmupS {
		return nil
	}
	if !m.beam.Ready() {
		// σ̂ of a one-second mean is at least what its own samples
		// scatter (pooled over the baseline), and the gauge resolution:
		// a baseline of unusually quiet seconds must not make the limits
		// tighter than the noise every second shows.
		m.withinSum += withinVar
		m.withinN++
		m.beam.MinSigma = max(beamMinSigPct/100*beamMA, math.Sqrt(m.withinSum/float64(m.withinN)))
		m.beam.Delta = beamDriftPct / 100 * beamMA
	}
	var out []process.Alarm
	if p := m.beam.Add(beamMA); p.Ready {
		c := m.beam.Center()
		dev := 100 * (beamMA/c - 1)
		if p.Step != 0 {
			out = m.raise(out, process.Alarm{Source: process.SourceSPC, Parameter: FieldBeamCurrent, Rule: process.RuleBeamStep,
				Severity: process.SeverityCritical, Value: beamMA, TimeS: t,
				Message: fmt.Sprintf("%s: beam current step to %.4g mA (%+.2f %% of the run's baseline %.4g mA, |z| = %.1f > %g σ̂)",
					process.RuleBeamStep, beamMA, dev, c, math.Abs(p.Z), beamStepL)}, dir(p.Step))
		}
		if p.Drift != 0 {
			out = m.raise(out, process.Alarm{Source: process.SourceFDC, Parameter: FieldBeamCurrent, Rule: process.RuleBeamDrift,
				Severity: process.SeverityWarning, Value: beamMA, TimeS: t,
				Message: fmt.Sprintf("%s: beam current drifting %s, now %.4g mA (%+.2f %% of the run's baseline %.4g mA; CUSUM beyond %g σ̂)",
					process.RuleBeamDrift, map[int]string{1: "up", -1: "down"}[p.Drift], beamMA, dev, c, beamDriftH)}, dir(p.Drift))
		}
	}
	if pressureTorr > 0 {
		if p := m.press.Add(math.Log(pressureTorr)); p.Ready && p.Step > 0 {
			base := math.Exp(m.press.Center())
			out = m.raise(out, process.Alarm{Source: process.SourceFDC, Parameter: FieldPressure, Rule: process.RulePressureBurst,
				Severity: process.SeverityCritical, Value: pressureTorr, TimeS: t,
				Message: fmt.Sprintf("%s: chamber pressure %.3g Torr, %.1f× the run's baseline %.3g Torr (outgassing burst or leak)",
					process.RulePressureBurst, pressureTorr, pressureTorr/base, base)}, "")
		}
	}
	return out
}

// glitch records a beam loss starting at t.
func (m *monitor) glitch(t float64) []process.Alarm {
	m.glitchT = append(m.glitchT, t)
	for len(m.glitchT) > 0 && m.glitchT[0] <= t-glitchWindowS {
		m.glitchT = m.glitchT[1:]
	}
	if len(m.glitchT) < glitchStormN || t < m.stormUntil {
		return nil
	}
	m.stormUntil = t + glitchWindowS
	delete(m.fired, process.RuleGlitchStorm)
	return m.raise(nil, process.Alarm{Source: process.SourceFDC, Parameter: FieldBeamCurrent, Rule: process.RuleGlitchStorm,
		Severity: process.SeverityWarning, Value: float64(len(m.glitchT)), TimeS: t,
		Message: fmt.Sprintf("%s: %d beam losses within %.0f s (arcing source or extraction)", process.RuleGlitchStorm, len(m.glitchT), glitchWindowS)}, "")
}

// pass checks a completed pass: the dose the integrator counted in it
// against the servo's plan for it. The servo sets the stage speed from the
// measured current so that each pass delivers its plan; a stage that
// moves at another speed than commanded shows as a pass dose off plan.
func (m *monitor) pass(counted, planned, t float64) []process.Alarm {
	if planned <= 0 {
		return nil
	}
	dev := 100 * (counted/planned - 1)
	m.passDev = append(m.passDev, dev)
	if math.Abs(dev) <= scanTolPct {
		return nil
	}
	return m.raise(nil, process.Alarm{Source: process.SourceFDC, Parameter: "pass_dose_error_pct", Rule: process.RuleScanSpeed,
		Severity: process.SeverityWarning, Value: dev, TimeS: t,
		Message: fmt.Sprintf("%s: a pass delivered %+.2f %% of its planned dose (tolerance ±%g %%): the slow-scan stage is %s than commanded",
			process.RuleScanSpeed, dev, scanTolPct, map[bool]string{true: "faster", false: "slower"}[dev < 0])}, "")
}

// raise appends a unless the same rule (and direction) already fired in
// this run or the run has raised maxAlarms.
func (m *monitor) raise(out []process.Alarm, a process.Alarm, direction string) []process.Alarm {
	key := a.Rule + direction
	if m.fired[key] || m.sent >= maxAlarms {
		return out
	}
	m.fired[key] = true
	m.sent++
	m.count[a.Source]++
	return append(out, a)
}

func dir(s int) string {
	if s < 0 {
		return "-"
	}
	return "+"
}

// SummaryFields names the components of Engine.Summary.
var SummaryFields = []string{"mean_beam_current_dev_pct", "mean_scan_speed_dev_pct"}

// Summary returns the run's summary vector for the multivariate check
// (spc.T2Library against good runs of the same tool and recipe class):
// the mean measured beam current against the current the source was
// tuned for, and the stage's mean speed against the speed the servo
// planned for that current, both in %. Across good runs the two move
// together — the source is tuned within about 1 %, and the dose servo
// scales the speed with the beam — so a beam a little low with a stage a
// little fast leaves each within its own spread but breaks the pair's
// correlation. Call it after the run.
func (e *Engine) Summary() []float64 {
	meanI := 0.0
	if e.nI > 0 {
		meanI = e.sumI / float64(e.nI)
	}
	return []float64{100 * (meanI/(e.i0A*1e3) - 1), 100 * (e.dc.meanSpeed()/e.plannedMMS - 1)}
}
