package rtp

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/r2r"
	"github.com/spectra-fab/spectra/process/silicon"
)

// Telemetry sample keys (the specification's "RTP").
const (
	KeyTime     = "time_s"
	KeySetpoint = "setpoint_temp_c"
	KeyMeasured = "measured_temp_c"
	KeyLamp     = "lamp_power_pct"
	KeyRampErr  = "ramp_error_c"
	KeyPressure = "chamber_pressure_torr"
	KeyN2       = "n2_flow_slm"
	KeyO2       = "o2_flow_slm"
)

// TelemetryKeys lists the sample keys in the order of the telemetry
// artifact.
var TelemetryKeys = []string{KeyTime, KeySetpoint, KeyMeasured, KeyLamp, KeyRampErr, KeyPressure, KeyN2, KeyO2}

// ChamberPressureTorr is the chamber pressure: atmospheric-pressure RTP,
// the pressure the Deal–Grove constants are given at.
const ChamberPressureTorr = 760.0

// R2RLambda is the EWMA weight of the run-to-run hold-time recommendation.
const R2RLambda = 0.3

// Engine is one RTP run: the wafer and lamp simulator, the pyrometer, the
// PID or MPC temperature controller, SPC and FDC monitors, and the
// metrics, virtual metrology and artifacts of the finished run. It
// implements process.Engine. It is deterministic for a given recipe and
// options and not safe for concurrent use.
type Engine struct {
	recipe  Recipe
	opts    process.Options
	prof    Profile
	nominal Profile // the recipe's profile without run-to-run adjustments
	loop    *loop
	rng     *rand.Rand
	steps   int
	n       int
	fault   *process.Fault
	fired   bool

	tel     [8][]float64 // columns in TelemetryKeys order
	wafer   []float64    // the wafer's own temperature at each sample (see metrics)
	phase   []int        // phase index of each sample
	alarms  []process.Alarm
	lastAt  map[string]float64
	mon     *monitor
	secErr  float64
	secFlow float64
	secU    float64
	secSP   float64
	secN    int
	armed   int // phase index whose monitoring is armed, -1 none
	satRun  int
	warning []string
}

var _ process.Engine = (*Engine)(nil)

// NewEngine validates r and returns an engine for it. Injected faults and
// disturbances come from the options only: the recipe's simulate_fault and
// simulate_disturbance are validated here, but the run actor decides
// whether a job carries them (a manual retry, standing for "after the
// repair", does not). Options.R2R may carry R2RTempOffset and
// R2RHoldOffset. It returns a *process.ValidationError for an invalid
// recipe.
func NewEngine(r Recipe, opts process.Options) (*Engine, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{recipe: r, opts: opts, armed: -1, lastAt: map[string]float64{}}
	e.rng = rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed_0e7b))
	e.prof = NewProfile(r.InitialC, adjusted(r.Segments, opts.R2R))
	e.nominal = NewProfile(r.InitialC, r.Segments)
	e.steps = max(int(math.Ceil(e.prof.TotalS/process.Period-1e-9)), 1)

	flow := r.N2SLM + r.O2SLM
	e.loop = newLoop(&e.prof, DefaultParams, flow, e.rng)
	e.loop.dist = opts.Disturbance
	switch r.ControllerType {
	case ControllerMPC:
		e.loop.mpc = newRecipeMPC(r, flow)
	default:
		pid := NewPID(r.Kp, r.Ki, r.Kd, process.Period)
		pid.HoldIntegral = true
		e.loop.pid = pid
	}
	e.fault = opts.Fault
	e.mon = newMonitor()
	for i := range e.tel {
		e.tel[i] = make([]float64, 0, e.steps)
	}
	e.phase = make([]int, 0, e.steps)
	e.wafer = make([]float64, 0, e.steps)
	e.warning = r.Warnings(DefaultBudget)
	return e, nil
}

// Kind returns process.KindRTP.
func (e *Engine) Kind() process.Kind { return process.KindRTP }

// SetupMarks are the seed's set-up steps (§2.5).
func (e *Engine) SetupMarks() []process.Mark {
	return []process.Mark{{Name: "Validation", Progress: 5}, {Name: "Simulator set-up", Progress: 10}, {Name: "Controller set-up", Progress: 15}}
}

// FinishMarks are the seed's steps after processing (§2.5).
func (e *Engine) FinishMarks() []process.Mark {
	return []process.Mark{{Name: "Metrics", Progress: 80}, {Name: "Virtual metrology", Progress: 85}, {Name: "Artifacts", Progress: 90}, {Name: "R2R recommendation", Progress: 95}}
}

// SafeState describes the tool after an early stop.
func (e *Engine) SafeState() string {
	return "lamps off, N2 purge on, wafer cooling by radiation"
}

// Step advances the run by one process.Period.
func (e *Engine) Step() process.StepResult {
	l := e.loop
	phaseBefore := e.prof.phaseAt(l.t)
	sp := l.step()
	y := l.y
	e.n++
	noise := func(v, rel float64) float64 {
		if v == 0 {
			return 0
		}
		return v * (1 + rel*e.rng.NormFloat64())
	}
	sample := process.Sample{
		KeyTime:     l.t,
		KeySetpoint: sp,
		KeyMeasured: y,
		KeyLamp:     l.u,
		KeyRampErr:  sp - y,
		KeyPressure: ChamberPressureTorr + 0.3*e.rng.NormFloat64(),
		KeyN2:       noise(e.recipe.N2SLM*l.flowFactor(), 0.003),
		KeyO2:       noise(e.recipe.O2SLM*l.flowFactor(), 0.003),
	}
	for i, k := range TelemetryKeys {
		e.tel[i] = append(e.tel[i], sample[k])
	}
	e.wafer = append(e.wafer, l.wafer.TempC)
	e.phase = append(e.phase, phaseBefore)

	res := process.StepResult{
		N:        e.n - 1,
		TimeS:    l.t,
		Sample:   sample,
		Progress: 20 + 60*min(float64(e.n)/float64(e.steps), 1),
		StepName: e.prof.StepName(l.t - process.Period/2),
		Done:     e.n >= e.steps,
	}
	res.Alarms = e.monitor(phaseBefore, sp, y, l.u, sample[KeyN2]+sample[KeyO2])
	if f := e.fault; f != nil && !e.fired && res.Progress >= f.AtProgress &&
		(f.Kind != process.FaultTransient || e.opts.Attempt == 0) {
		e.fired = true
		ff := *f
		if ff.Message == "" {
			ff.Message = fmt.Sprintf("simulated %s fault at %.0f %% (%s, wafer at %.0f °C)", ff.Kind, res.Progress, res.StepName, y)
		}
		res.Fault = &ff
		res.Done = false
	}
	return res
}

// monitor feeds the run's monitors with the sample just taken and
// returns the alarms they raise, rate-limited.
func (e *Engine) monitor(phase int, sp, y, u, flow float64) []process.Alarm {
	var out []process.Alarm
	t := e.loop.t
	// Lamp saturation: a second at full power means the recipe asks for
	// more than the lamps have (or they are failing).
	if u >= 99.99 {
		e.satRun++
		if e.satRun == process.StepsPerBatch {
			out = e.raise(out, process.Alarm{Source: process.SourceFDC, Parameter: KeyLamp, Rule: "SATURATION",
				Message: "lamp power saturated at 100 % for 1 s", Severity: process.SeverityWarning, Value: u, TimeS: t})
		}
	} else {
		e.satRun = 0
	}
	ph := e.prof.Phases[max(phase, 0)]
	settled := !ph.Ramp && e.armed == phase && phase == e.prof.phaseAt(t-process.Period+1e-9)
	if a := e.mon.sample(sp-y, settled && sp >= pyroValidC, t, y); a != nil {
		out = e.raise(out, *a)
	}

	e.secErr += sp - y
	e.secU += u
	e.secSP += sp
	e.secFlow += flow
	e.secN++
	if e.secN < process.StepsPerBatch {
		return out
	}
	meanErr := e.secErr / float64(e.secN)
	meanU := e.secU / float64(e.secN)
	meanSP := e.secSP / float64(e.secN)
	meanFlow := e.secFlow / float64(e.secN)
	e.secErr, e.secU, e.secSP, e.secFlow, e.secN = 0, 0, 0, 0, 0
	if a := e.mon.gas(meanFlow, e.recipe.N2SLM+e.recipe.O2SLM, t); a != nil {
		out = e.raise(out, *a)
	}

	if ph.Ramp || phase != e.prof.phaseAt(t-1+1e-9) {
		return out // a ramp, or a second that straddles phases
	}
	if e.armed != phase {
		if math.Abs(meanErr) > settleBandC {
			return out
		}
		e.armed = phase
		return out // first settled second: arm from the next one
	}
	if math.Abs(meanErr) > trackingLimitC {
		out = e.raise(out, process.Alarm{Source: process.SourceFDC, Parameter: "temp_error_c", Rule: "TRACKING",
			Message: fmt.Sprintf("hold at %.0f °C off by %.1f °C", meanSP, meanErr), Severity: process.SeverityCritical, Value: meanErr, TimeS: t})
	}
	if meanSP >= 600 {
		ss := e.loop.model.SteadyLampPct(meanSP, e.recipe.N2SLM+e.recipe.O2SLM)
		if a := e.mon.residual(meanU-ss, t); a != nil {
			out = e.raise(out, *a)
		}
	}
	return out
}

// raise appends a to out unless the same source, parameter and rule fired
// within alarmEveryS or the run has raised maxAlarms.
func (e *Engine) raise(out []process.Alarm, a process.Alarm) []process.Alarm {
	key := string(a.Source) + "/" + a.Parameter + "/" + a.Rule
	if last, ok := e.lastAt[key]; ok && a.TimeS-last < alarmEveryS {
		return out
	}
	if len(e.alarms) >= maxAlarms {
		return out
	}
	e.lastAt[key] = a.TimeS
	e.alarms = append(e.alarms, a)
	return append(out, a)
}

// settleBandWaferC is the settling band: ±1 °C of the hold's target, on
// the wafer's temperature.
const settleBandWaferC = 1.0

// Metrics are the control-performance results of a run.
type Metrics struct {
	FinalC        float64   // mean measured temperature over the last second
	TargetC       float64   // the last segment's target (with R2R)
	TempErrorC    float64   // FinalC − TargetC
	MaxOvershootC float64   // worst excursion of the wafer past a target after a ramp
	AvgRampErrorC float64   // mean |set-point − measured| while ramping
	SettlingS     float64   // settling time of the first hold at the peak
	HoldSettlingS []float64 // settling time of every hold after a ramp (-1: never)
	PeakC         float64   // highest one-second mean measured temperature
	HoldSigmaC    float64   // σ of the measured temperature in settled holds
}

// metrics computes the run's control metrics from its telemetry and the
// wafer's temperature (docs/tuning.md, "What a run reports"):
//
//   - the ramp error is the mean |set-point − pyrometer reading| over the
//     ramps: a mean over hundreds of samples, which the pyrometer's 0.3 °C
//     white noise barely moves;
//   - overshoot and settling are an extreme and a first passage, which
//     noise does move: on the pyrometer they measured the noise (a 0.5 s
//     mean of it peaks near 0.4 °C in any 10 s hold), so they are taken on
//     the wafer's own temperature, what a thermocouple wafer reports when a
//     real tool's controller is qualified. Settling is the time from a
//     hold's start until the wafer stays within ±1 °C of its target.
func (e *Engine) metrics() Metrics {
	meas, sp := e.tel[2], e.tel[1]
	n := len(meas)
	var m Metrics
	if n == 0 {
		return m
	}
	last := max(n-process.StepsPerBatch, 0)
	var s float64
	for _, v := range meas[last:] {
		s += v
	}
	m.FinalC = s / float64(n-last)
	m.TargetC = e.prof.Setpoint(e.prof.TotalS)
	m.TempErrorC = m.FinalC - m.TargetC

	var rampSum float64
	var rampN int
	for i := range n {
		if e.prof.Phases[e.phase[i]].Ramp {
			rampSum += math.Abs(sp[i] - meas[i])
			rampN++
		}
	}
	if rampN > 0 {
		m.AvgRampErrorC = rampSum / float64(rampN)
	}
	for i := process.StepsPerBatch - 1; i < n; i += process.StepsPerBatch {
		var s float64
		for _, v := range meas[i-process.StepsPerBatch+1 : i+1] {
			s += v
		}
		m.PeakC = max(m.PeakC, s/process.StepsPerBatch)
	}

	peak := e.prof.PeakC()
	m.SettlingS = -1
	var dev []float64
	for pi, ph := range e.prof.Phases {
		if ph.Ramp || pi == 0 || !e.prof.Phases[pi-1].Ramp {
			continue
		}
		up := ph.ToC > e.prof.Phases[pi-1].FromC
		settled := -1.0
		for i := range n {
			if e.phase[i] != pi {
				continue
			}
			over := e.wafer[i] - ph.ToC
			if !up {
				over = -over
			}
			m.MaxOvershootC = max(m.MaxOvershootC, over)
			if math.Abs(e.wafer[i]-ph.ToC) > settleBandWaferC {
				settled = -1
			} else if settled < 0 {
				settled = round(e.tel[0][i]-process.Period-ph.StartS, 3)
			}
			if settled >= 0 {
				dev = append(dev, meas[i]-ph.ToC)
			}
		}
		m.HoldSettlingS = append(m.HoldSettlingS, settled)
		if ph.ToC == peak && m.SettlingS < 0 {
			m.SettlingS = settled
		}
	}
	if len(dev) > 1 {
		var mean, ss float64
		for _, d := range dev {
			mean += d
		}
		mean /= float64(len(dev))
		for _, d := range dev {
			ss += (d - mean) * (d - mean)
		}
		m.HoldSigmaC = math.Sqrt(ss / float64(len(dev)-1))
	}
	return m
}

// Finish computes the run's results, virtual metrology, artifacts and
// run-to-run observations. The Result keys are:
//
//	final_temp_c, temp_error_c, max_overshoot_c, avg_ramp_error_c,
//	settling_time_s            control metrics (see Metrics)
//	thermal_budget             ∫D dt of the implanted species (boron when
//	                           the recipe names none) over the measured
//	                           trace, in cm² (Plummer diffusivities)
//	thermal_budget_species     the species it is for
//	diffusion_length_um        2√(Dt), µm (silicon.DiffusionLength)
//	effective_time_s           Dt / D(peak), s
//	peak_temp_c                highest one-second mean temperature
//	vm_prediction              activation_pct, diffusion_depth_um,
//	                           sheet_resistance_ohm_sq, junction_depth_um
//	                           (null without ion_implant_context) and
//	                           oxide_thickness_nm
//	r2r_recommendation         {hold_offset_s, t_eff_error_s, lambda}
//	spc_alerts_count, warnings
//
// R2R observations: temp_error_c, max_overshoot_c, avg_ramp_error_c,
// settling_time_s, final_temp_c, peak_temp_c, hold_sigma_c,
// thermal_budget_cm2, t_eff_error_s, oxide_thickness_nm and, with an
// implant context, sheet_resistance_ohm_sq and junction_depth_um.
// Artifacts: telemetry.json, temperature_profile.svg, control_chart.svg,
// spc_alerts.json, vm_prediction.json.
func (e *Engine) Finish() process.Outcome {
	m := e.metrics()
	times, meas := e.tel[0], e.tel[2]
	species := e.recipe.budgetSpecies()
	// The trace starts at the initial temperature at t = 0.
	bt := append([]float64{0}, times...)
	bT := append([]float64{e.recipe.InitialC}, meas...)
	budget := silicon.ThermalBudget(species, bt, bT)
	tEff := silicon.EffectiveTime(species, budget, m.PeakC)

	// R2R: hold the effective time at the recipe's nominal peak.
	nomPeak := e.nominal.PeakC()
	nomEff := silicon.EffectiveTime(species, e.nominal.Budget(species), nomPeak)
	effErr := silicon.EffectiveTime(species, budget, nomPeak) - nomEff
	applied := clampFinite(e.opts.R2R[R2RHoldOffset], -MaxSegmentS, MaxSegmentS)
	ctl := r2r.NewEWMA(R2RLambda, 0)
	ctl.Offset, ctl.Applied = -applied, applied // steady state: a = T − b·u
	ctl.Min, ctl.Max = -60, 60
	ctl = ctl.Update(effErr)
	rec := ctl.Recommend()

	o2 := 0.0
	if f := e.recipe.N2SLM + e.recipe.O2SLM; f > 0 {
		o2 = e.recipe.O2SLM / f
	}
	vm := VMResult{OxideThicknessNm: oxideNm(meas, process.Period, o2)}
	obs := &Observations{
		TempErrorC:       m.TempErrorC,
		MaxOvershootC:    m.MaxOvershootC,
		AvgRampErrorC:    m.AvgRampErrorC,
		SettlingTimeS:    m.SettlingS,
		FinalTempC:       m.FinalC,
		PeakTempC:        m.PeakC,
		HoldSigmaC:       m.HoldSigmaC,
		ThermalBudgetCm2: budget,
		TEffErrorS:       effErr,
		OxideThicknessNm: vm.OxideThicknessNm,
	}
	warnings := append([]string(nil), e.warning...)
	if c := e.recipe.Implant; c != nil {
		act, diff, rs, xj, err := predictImplant(*c, budget, m.PeakC)
		switch {
		case err != nil:
			warnings = append(warnings, err.Error()+": implant VM not predicted")
		default:
			vm.ActivationPct, vm.DiffusionDepthUm, vm.JunctionDepthUm = &act, &diff, &xj
			if !math.IsInf(rs, 0) && !math.IsNaN(rs) {
				vm.SheetResistanceOhmSq = &rs
				obs.SheetResistanceOhmSq = &rs
			}
			obs.JunctionDepthUm = &xj
		}
	}

	if m.AvgRampErrorC > 5 {
		warnings = append(warnings, fmt.Sprintf("average ramp error %.1f °C: a ramp asks for more than the lamps can heat or radiation can cool (free cooling is ≈27 °C/s at 600 °C, ≈10 °C/s at 400 °C)", m.AvgRampErrorC))
	}
	if m.SettlingS < 0 {
		warnings = append(warnings, "the peak hold never settled within ±1 °C")
	}

	result := &Result{
		FinalTempC:           m.FinalC,
		TempErrorC:           m.TempErrorC,
		MaxOvershootC:        m.MaxOvershootC,
		AvgRampErrorC:        m.AvgRampErrorC,
		SettlingTimeS:        m.SettlingS,
		ThermalBudget:        budget,
		ThermalBudgetSpecies: species,
		DiffusionLengthUm:    silicon.DiffusionLength(budget),
		EffectiveTimeS:       tEff,
		PeakTempC:            m.PeakC,
		VMPrediction:         vm,
		R2RRecommendation:    Recommendation{HoldOffsetS: rec, TEffErrorS: effErr, Lambda: R2RLambda},
		SPCAlertsCount:       len(e.alarms),
		Warnings:             warnings,
	}
	return process.Outcome{
		Result:    result,
		Artifacts: e.artifacts(vm),
		R2R:       obs,
	}
}

// newRecipeMPC returns the MPC with the recipe's horizon and move weight
// where it sets them.
func newRecipeMPC(r Recipe, flowSLM float64) *MPC {
	m := NewMPC(DefaultParams, flowSLM, process.Period)
	if r.MPCHorizon > 0 {
		m.Np = r.MPCHorizon
	}
	if r.MPCMoveWeight > 0 {
		m.Lambda = r.MPCMoveWeight
	}
	return m
}
