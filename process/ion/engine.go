package ion

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion/lss"
	"github.com/spectra-fab/spectra/process/r2r"
)

// Simulator constants. Values tagged [K] in the physics reference are
// typical, not measured on a particular tool.
const (
	chargeState = 1.0 // singly charged ions: the analyser is set for n = 1

	beamWhitePct    = 0.4   // beam-current fluctuation, 1σ per 100 ms sample
	beamWanderPct   = 0.05  // slow source wander (Ornstein–Uhlenbeck), 1σ
	beamWanderTauS  = 30.0  // its correlation time
	beamAgingPctMin = -0.05 // source ageing, %/min
	glitchesPerMin  = 0.5   // arc-down glitches (beam lost for 0.1–0.3 s)
	faradayNoisePct = 0.05  // Faraday read noise, 1σ per sample
	faradayCalPct   = 0.15  // Faraday calibration error of a tool (seeded), 1σ
	neutralPerTorr  = 2000  // charge exchange: neutral fraction 1 − exp(−κP) (§1.6)
	kappaErrPct     = 5.0   // error of the tool's pressure-compensation κ, 1σ
	// sourceTunePct is how closely the source is tuned to the recipe's
	// beam current before a run, 1σ: set-up stops within a few % of the
	// request, and the dose servo makes up the difference with the scan
	// speed (so across runs the mean scan speed follows the mean beam).
	sourceTunePct    = 1.0
	basePressureTorr = 2.0e-6
	outgasTorrPerW   = 5e-9 // resist outgassing per watt on the wafer
	outgasTauS       = 3.0
	pressureNoisePct = 2.0
	analyzerNoiseV   = 0.5
	analyzerRadiusM  = 0.5 // analysing magnet bend radius
	chuckC           = 20.0
	contactWcm2K     = 0.02  // gas-assisted ESC contact (§1.9: 0.01–0.05)
	siliconCpJkgK    = 712.0 // at 25 °C (§1.9); the wafer stays below ~100 °C
	siliconDensity   = 2.329 // g/cm³
	resistLimitC     = 100.0 // photoresist is kept below ~100 °C (§1.9)
	xResidualPct     = 0.2   // profiler-corrected sweep residual per Legendre order
	stageRipplePct   = 0.1   // slow-scan stage speed repeatability, 1σ per pass [K]

	deadBeamS     = 30.0 // measured beam below the servo's hold level this long → fault
	defaultBurstS = 5.0  // a pressure burst without duration_s lasts this long
	r2rLambda     = 0.3  // EWMA weight of the dose trim (§5.5)
	r2rScaleKey   = "dose_setpoint_scale"
	r2rScaleMin   = 0.9
	r2rScaleMax   = 1.1
)

// Telemetry field names (SPEC "Ion implantation").
const (
	FieldTime        = "time_s"
	FieldBeamCurrent = "beam_current_ma"
	FieldPressure    = "chamber_pressure_torr"
	FieldAnalyzer    = "analyzer_field_v"
	FieldDose        = "integrated_dose_atoms_cm2"
	FieldUniformity  = "dose_uniformity_pct"
	FieldWaferTemp   = "wafer_temp_c"
)

// TelemetryFields lists the sample keys in their artifact order.
var TelemetryFields = []string{FieldTime, FieldBeamCurrent, FieldPressure, FieldAnalyzer, FieldDose, FieldUniformity, FieldWaferTemp}

// Factors of every step, computed once as a step computed them (at run
// time, in float64 from the period held in a variable), so that samples
// stay the same bit for bit.
var (
	stepDt      = process.Period
	wanderDecay = math.Exp(-stepDt / beamWanderTauS)
	wanderKick  = math.Sqrt(1 - wanderDecay*wanderDecay)
	outgasGain  = 1 - math.Exp(-stepDt/outgasTauS)
)

// numFields is len(TelemetryFields).
const numFields = 7

// telOf returns the samples of field so far (nil for an unknown field).
func (e *Engine) telOf(field string) []float64 {
	for i, f := range TelemetryFields {
		if f == field {
			return e.tel[i]
		}
	}
	return nil
}

// waferThicknessUm is the SEMI M1 thickness per diameter.
var waferThicknessUm = map[float64]float64{100: 525, 150: 675, 200: 725, 300: 775}

// Engine simulates one implant on a hardware-in-the-loop model of a hybrid-
// scan implanter and runs its controllers; it implements process.Engine.
// See the package documentation for the models.
type Engine struct {
	r     Recipe
	opts  process.Options
	fault *process.Fault
	dist  *process.Disturbance
	mom   lss.Moments // vertical moments (tilted)
	cosT  float64
	scale float64 // R2R dose set-point scale

	i0A        float64 // beam current the source is tuned to, A (the recipe's, or lowered: see maxBeamA)
	lowered    string  // why the beam current was lowered, or ""
	iSrcA      float64 // true particle current that reads as i0A at base pressure
	geo        *scanGeom
	dc         *doseController
	plannedS   float64
	plannedMMS float64 // the servo's speed for the tuned-for current and the first pass plan
	maxS       float64

	beam, press, glitch, meas *rand.Rand

	n          int
	t          float64
	wander     float64 // relative
	glitchLeft int
	glitches   int
	pBase      float64
	pOut       float64
	pressure   float64
	kappaEst   float64
	gCal       float64
	tempC      float64
	heatCapJK  float64
	coolWK     float64
	coolDecay  float64 // the wafer temperature's decay over a step
	deadS      float64
	lastOnFrac float64

	mon        *monitor
	secSum     float64
	secSS      float64 // sum of squares of the second's beam samples
	secN       int
	secP       float64
	beamLost   bool
	tempAlarm  bool
	sumI, sumP float64
	nI, nP     int
	maxTemp    float64

	tel     [numFields][]float64 // every sample, by field in TelemetryFields order
	pct     int                  // the dose percent StepName last named, or -1
	pctName string
	done    bool
	ended   *process.Fault
	last    process.StepResult
	outcome *process.Outcome
}

var _ process.Engine = (*Engine)(nil)

// NewEngine returns an engine for recipe r. It validates r (a
// *process.ValidationError) and the R2R adjustment "dose_setpoint_scale"
// (0.9–1.1; absent means 1). Injected faults and disturbances come from the
// options only: the recipe's simulate_fault and simulate_disturbance are
// validated, but the run actor decides which job carries them (a manual
// retry, standing for "after the repair", does not).
func NewEngine(r Recipe, opts process.Options) (*Engine, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{r: r, opts: opts, fault: opts.Fault, dist: opts.Disturbance, scale: 1}
	if s, ok := opts.R2R[r2rScaleKey]; ok {
		if !(s >= r2rScaleMin && s <= r2rScaleMax) {
			v := &process.ValidationError{}
			v.Add("r2r."+r2rScaleKey, s, "0.9–1.1", "R2R adjustment out of range")
			return nil, v
		}
		e.scale = s
	}
	m0, err := Moments(r.Species, r.EnergyKeV)
	if err != nil {
		return nil, fmt.Errorf("new engine: %w", err)
	}
	e.mom = Tilted(m0, r.TiltDeg)
	e.cosT = math.Cos(r.TiltDeg * math.Pi / 180)

	seed := uint64(opts.Seed)
	e.beam = rand.New(rand.NewPCG(seed, 0xbea3))
	e.press = rand.New(rand.NewPCG(seed, 0x9e55))
	e.glitch = rand.New(rand.NewPCG(seed, 0x611c))
	e.meas = rand.New(rand.NewPCG(seed, 0xfa4a))
	tool := rand.New(rand.NewPCG(seed, 0x7001))

	e.geo = newScanGeom(r.WaferDiameterMM)
	for k := range e.geo.xCoef {
		e.geo.xCoef[k] = tool.NormFloat64() * xResidualPct / 100
	}
	e.gCal = tool.NormFloat64() * faradayCalPct / 100
	e.kappaEst = neutralPerTorr * (1 + tool.NormFloat64()*kappaErrPct/100)
	e.pBase = basePressureTorr * (1 + 0.05*tool.NormFloat64())
	e.pressure = e.pBase
	setpoint := r.DoseAtomsCm2 * e.scale / e.cosT // fluence normal to the beam
	e.i0A = r.BeamCurrentMA * 1e-3
	if capA := maxBeamA(e.geo, setpoint); e.i0A > capA {
		e.lowered = fmt.Sprintf("beam current lowered from %.3g mA to %.3g mA: one pass at %.3g mA delivers %.3g atoms/cm² even at the %.0f mm/s maximum scan speed, more than the %.3g asked, and a dose integrator that gates the beam off mid-pass leaves part of the wafer unimplanted",
			r.BeamCurrentMA, capA*1e3, r.BeamCurrentMA, r.BeamCurrentMA*1e-3/(chargeState*elementaryCharge*e.geo.width/10*maxScanMMS/10), maxScanMMS, setpoint)
		e.i0A = capA
	}
	// The source is tuned until the compensated Faraday reads the recipe
	// current at base pressure, within sourceTunePct.
	e.iSrcA = e.i0A / ((1 + e.gCal) * math.Exp(-neutralPerTorr*e.pBase) * math.Exp(e.kappaEst*e.pBase))
	e.iSrcA *= 1 + tool.NormFloat64()*sourceTunePct/100

	e.dc = newDoseController(e.geo, setpoint, e.i0A, r.ScanSpeedMMS, chargeState)
	e.plannedMMS = e.dc.speed(e.i0A)
	e.plannedS = setpoint * chargeState * elementaryCharge * e.geo.scannedAreaCm2() / e.i0A
	e.maxS = 3*e.plannedS + 60

	thick := waferThicknessUm[r.WaferDiameterMM] * 1e-4 // cm
	areaCm2 := math.Pi * math.Pow(r.WaferDiameterMM/20, 2)
	e.heatCapJK = areaCm2 * thick * siliconDensity * 1e-3 * siliconCpJkgK
	e.coolWK = contactWcm2K * areaCm2
	tau := e.heatCapJK / e.coolWK
	e.coolDecay = math.Exp(-stepDt / tau)
	e.tempC = chuckC
	e.maxTemp = chuckC

	e.mon = newMonitor()
	stage := rand.New(rand.NewPCG(seed, 0x57a6))
	e.dc.nextRipple = func() float64 { return stageRipplePct / 100 * stage.NormFloat64() }
	e.dc.ripple = e.dc.nextRipple()
	if d := opts.Disturbance; d.Is(process.ScanSpeedError) {
		e.dc.stageErr = d.Value() / 100
		e.dc.stageErrFrom = d.StartS
	}

	capacity := int(e.plannedS/process.Period) + 16
	for i := range e.tel {
		e.tel[i] = make([]float64, 0, min(capacity, 1<<20))
	}
	e.pct = -1
	return e, nil
}

// Kind returns process.KindIon.
func (e *Engine) Kind() process.Kind { return process.KindIon }

// SetupMarks returns the seed's set-up steps: validation (5 %), simulator
// set-up (10 %) and controller set-up (15 %).
func (e *Engine) SetupMarks() []process.Mark {
	return []process.Mark{{Name: "Validation", Progress: 5}, {Name: "Simulator set-up", Progress: 10}, {Name: "Controller set-up", Progress: 15}}
}

// FinishMarks returns the seed's closing steps: final checks (80 %), 2-D
// profile (85 %), virtual metrology (90 %) and artifacts (95 %).
func (e *Engine) FinishMarks() []process.Mark {
	return []process.Mark{{Name: "Final checks", Progress: 80}, {Name: "2-D profile", Progress: 85}, {Name: "Virtual metrology", Progress: 90}, {Name: "Artifacts", Progress: 95}}
}

// SafeState describes the tool after an early stop.
func (e *Engine) SafeState() string {
	return "beam gated off into the Faraday cup, scan stopped, wafer parked at the load position, source in standby"
}

// Step advances the implant by one period (100 ms). Progress runs from 20
// to 80 % with the integrated dose. The step that reaches the dose, or that
// raises a fault (an injected one, a dead beam, or a run that could not
// reach its dose in three times the planned time), has Done set; a step
// after that returns the last result again without advancing.
func (e *Engine) Step() process.StepResult {
	if e.done {
		r := e.last
		r.Alarms = nil
		return r
	}
	dt := process.Period
	e.t = float64(e.n+1) * dt
	res := process.StepResult{N: e.n, TimeS: e.t}

	// Beam: source ageing, slow wander, white fluctuation, glitches, and
	// the injected disturbance.
	e.wander = wanderDecay*e.wander + wanderKick*beamWanderPct/100*e.beam.NormFloat64()
	rel := 1 + e.wander + beamAgingPctMin/100*e.t/60 + beamWhitePct/100*e.beam.NormFloat64()
	rate := glitchesPerMin
	if d := e.dist; d != nil && e.t >= d.StartS {
		rel += (d.OffsetPct + d.DriftPctPerMin*(e.t-d.StartS)/60) / 100
		switch {
		case !d.Active(e.t):
		case d.Is(process.BeamCurrentStep):
			rel += d.Value() / 100
		case d.Is(process.BeamCurrentDrift):
			rel += d.Value() / 100 * (e.t - d.StartS) / 60
		case d.Is(process.GlitchStorm):
			rate += d.Value()
		}
	}
	if e.glitchLeft == 0 && e.glitch.Float64() < rate/60*dt {
		e.glitchLeft = 1 + e.glitch.IntN(3)
		e.glitches++
	}
	glitching := e.glitchLeft > 0
	if glitching {
		e.glitchLeft--
		rel = 0
	}
	trueA := math.Max(0, e.iSrcA*rel)

	// Chamber pressure: base plus resist outgassing driven by the beam
	// power on the wafer in the previous period.
	powerW := e.r.EnergyKeV * trueA * 1e3 / chargeState * e.lastOnFrac
	e.pOut += (outgasTorrPerW*powerW - e.pOut) * outgasGain
	burst := 0.0
	if d := e.dist; d.Is(process.PressureBurst) && (d.Active(e.t) || d.DurationS == 0 && e.t >= d.StartS && e.t < d.StartS+defaultBurstS) {
		burst = d.Value() * e.pBase
	}
	e.pressure = (e.pBase + e.pOut + burst) * (1 + pressureNoisePct/100*e.press.NormFloat64())

	// Faraday: charge exchange turns a fraction of the ions into uncounted
	// neutrals; the tool compensates with its own κ.
	measRaw := trueA*math.Exp(-neutralPerTorr*e.pressure)*(1+e.gCal) + e.i0A*faradayNoisePct/100*e.meas.NormFloat64()
	measA := math.Max(0, measRaw) * math.Exp(e.kappaEst*e.pressure)

	// Dose integrator and scan servo.
	e.dc.t = e.t - dt
	_, on := e.dc.step(trueA, measA, dt)
	yb := e.dc.sc.y
	e.lastOnFrac = on * e.geo.chord(yb, 0) / e.geo.width

	// Wafer temperature: m·cp·dT/dt = P − h·A·(T − T_chuck) (§1.9).
	powerW = e.r.EnergyKeV * trueA * 1e3 / chargeState * e.lastOnFrac
	tInf := chuckC + powerW/e.coolWK
	e.tempC = tInf + (e.tempC-tInf)*e.coolDecay
	e.maxTemp = math.Max(e.maxTemp, e.tempC)

	analyzerV := e.r.EnergyKeV*1e3/chargeState + analyzerNoiseV*e.meas.NormFloat64()
	_, unif := e.dc.sc.uniformity()
	doseNow := e.dc.q * e.cosT
	measMA := measA * 1e3

	vals := [numFields]float64{e.t, measMA, e.pressure, analyzerV, doseNow, uniformPct(unif), e.tempC} // TelemetryFields order
	for i, v := range vals {
		e.tel[i] = append(e.tel[i], v)
	}
	res.Sample = process.Sample{
		FieldTime: vals[0], FieldBeamCurrent: vals[1], FieldPressure: vals[2], FieldAnalyzer: vals[3],
		FieldDose: vals[4], FieldUniformity: vals[5], FieldWaferTemp: vals[6],
	}
	e.sumP += e.pressure
	e.nP++

	// Monitors: one-second means of the beam current (glitches excluded)
	// and of the pressure, beam losses, completed passes.
	e.secP += e.pressure
	if measA >= e.dc.holdBelow {
		e.secSum += measMA
		e.secSS += measMA * measMA
		e.secN++
		e.sumI += measMA
		e.nI++
		e.deadS = 0
		e.beamLost = false
	} else {
		if !glitching {
			e.deadS += dt
		}
		if !e.beamLost {
			e.beamLost = true
			res.Alarms = append(res.Alarms, e.mon.glitch(e.t)...)
		}
	}
	for _, p := range e.dc.completed {
		res.Alarms = append(res.Alarms, e.mon.pass(p[0], p[1], e.t)...)
	}
	e.dc.completed = e.dc.completed[:0]
	if (e.n+1)%process.StepsPerBatch == 0 {
		if e.secN >= process.StepsPerBatch/2 {
			n := float64(e.secN)
			mean := e.secSum / n
			within := math.Max(0, (e.secSS-n*mean*mean)/(n-1)) / n // variance of the mean from the second's own samples
			res.Alarms = append(res.Alarms, e.mon.second(mean, within, e.secP/process.StepsPerBatch, e.t)...)
		}
		e.secSum, e.secSS, e.secN, e.secP = 0, 0, 0, 0
	}
	if e.tempC > resistLimitC && !e.tempAlarm {
		e.tempAlarm = true
		e.mon.count[process.SourceFDC]++
		res.Alarms = append(res.Alarms, process.Alarm{
			Source: process.SourceFDC, Parameter: FieldWaferTemp, Rule: "TEMP_LIMIT", Severity: process.SeverityWarning,
			Message: fmt.Sprintf("wafer temperature %.0f °C above the %.0f °C photoresist limit: lower the beam power", e.tempC, resistLimitC),
			Value:   e.tempC, TimeS: e.t,
		})
	}

	frac := math.Min(1, e.dc.q/e.dc.setpoint)
	if e.dc.done {
		frac = 1
	}
	res.Progress = 20 + 60*frac
	if pct := int(math.Floor(100 * frac)); pct != e.pct {
		e.pct, e.pctName = pct, fmt.Sprintf("Implanting (%d%% dose)", pct)
	}
	res.StepName = e.pctName
	switch {
	case e.dc.done:
		res.Done = true
	case e.injectedFault(res.Progress) != nil:
		res.Fault = e.injectedFault(res.Progress)
	case e.deadS >= deadBeamS:
		res.Fault = &process.Fault{Kind: process.FaultPermanent, AtProgress: res.Progress,
			Message: fmt.Sprintf("beam stability check failed: beam current below %.3g mA for %.0f s", e.dc.holdBelow*1e3, deadBeamS)}
	case e.t >= e.maxS:
		res.Fault = &process.Fault{Kind: process.FaultPermanent, AtProgress: res.Progress,
			Message: fmt.Sprintf("dose not reached in %.0f s (%.0f%% of %.3g atoms/cm²)", e.t, 100*frac, e.r.DoseAtomsCm2*e.scale)}
	}
	if res.Fault != nil {
		res.Done = true
		e.ended = res.Fault
	}
	e.done = res.Done
	e.n++
	e.last = res
	return res
}

// injectedFault returns the injected fault when the run has reached its
// progress (clamped to the implant's 20–80 %), or nil. A transient fault
// fires only on attempt 0.
func (e *Engine) injectedFault(progress float64) *process.Fault {
	f := e.fault
	if f == nil || (f.Kind == process.FaultTransient && e.opts.Attempt > 0) {
		return nil
	}
	if progress < math.Min(80, math.Max(20, f.AtProgress)) {
		return nil
	}
	out := *f
	out.AtProgress = progress
	if out.Message == "" {
		out.Message = fmt.Sprintf("injected %s fault at %.0f%% progress", f.Kind, progress)
		if f.Kind == process.FaultInterlock {
			out.Message = fmt.Sprintf("implanter interlock tripped at %.0f%% progress (injected)", progress)
		}
	}
	return &out
}

// Finish computes the run's results, the R2R observations and the
// artifacts. After a fault it reports what the wafer received so far.
func (e *Engine) Finish() process.Outcome {
	if e.outcome != nil {
		return *e.outcome
	}
	exact := e.dc.sc.exactUniformity()
	finalDose := exact.mean * e.cosT
	target := e.r.DoseAtomsCm2
	doseErr := 100 * (finalDose - target) / target
	measured := e.dc.q * e.cosT

	pr, p := depthProfile(e.mom, measured)
	vm := predictVM(e.r.Species, pr)

	// One EWMA step on the dose trim: the applied scale u gives the ratio
	// y = delivered/target; with the prior offset consistent with u the
	// next scale is (1 − a)/1 (§5.5, unit gain).
	ctl := r2r.NewEWMA(r2rLambda, 1)
	ctl.Offset = 1 - e.scale
	ctl.Min, ctl.Max = r2rScaleMin, r2rScaleMax
	ctl = ctl.UpdateApplied(finalDose/target, e.scale)
	next := ctl.Recommend()

	meanI := 0.0
	if e.nI > 0 {
		meanI = e.sumI / float64(e.nI)
	}
	meanP := 0.0
	if e.nP > 0 {
		meanP = e.sumP / float64(e.nP)
	}
	info := species[e.r.Species]
	massKg := info.massU * 1.66053906660e-27
	fieldT := math.Sqrt(2*massKg*e.r.EnergyKeV*1e3*elementaryCharge) / (chargeState * elementaryCharge * analyzerRadiusM)

	summary := e.Summary()
	result := &Result{
		FinalDoseAtomsCm2:      finalDose,
		DoseErrorPct:           doseErr,
		IntegratedDoseAtomsCm2: measured,
		DoseSetpointAtomsCm2:   target * e.scale,
		DoseUniformityPct:      uniformPct(exact.sigmaPct),
		DoseNonUniformityPct:   exact.sigmaPct,
		VMPrediction: VMResult{
			SheetResistanceOhmSq: finite(vm.SheetResistanceOhmSq),
			JunctionDepthUm:      finite(vm.JunctionDepthUm),
			ActivationPct:        finite(vm.ActivationPct),
		},
		VMAssumptions: VMAssumptions{AnnealTempC: vmAnnealC, AnnealTimeS: vmAnnealS,
			BackgroundCm3: vmBackgroundCm3, BackgroundType: backgroundType(e.r.Species)},
		MeanBeamCurrentMA:       meanI,
		MeanScanSpeedMMS:        e.dc.meanSpeed(),
		MeanBeamCurrentDevPct:   summary[0],
		MeanScanSpeedDevPct:     summary[1],
		MeanChamberPressureTorr: meanP,
		MaxWaferTempC:           e.maxTemp,
		AnalyzerFieldT:          fieldT,
		R2RRecommendation:       DoseTrim{DoseSetpointScale: next},
		R2RApplied:              DoseTrim{DoseSetpointScale: e.scale},
		ProjectedRangeNm:        e.mom.RpNm,
		StraggleNm:              e.mom.DRpNm,
		ProfileModel:            p.Kind(),
		ImplantTimeS:            e.t,
		PlannedImplantS:         e.plannedS,
		Passes:                  e.dc.sc.passes,
		BeamGlitches:            e.glitches,
		SPCAlertsCount:          e.mon.count[process.SourceSPC],
		FDCAlarmsCount:          e.mon.count[process.SourceFDC],
	}
	if e.lowered != "" {
		result.Warnings = append(result.Warnings, e.lowered)
	}
	if e.dc.underdose {
		result.Warnings = append(result.Warnings, fmt.Sprintf("dose ended at a pass boundary %.3g %% short of the set-point (less than a trim pass is worth)", 100*(1-e.dc.q/e.dc.setpoint)))
	}
	if e.ended != nil {
		result.Fault = e.ended.Message
	}
	out := process.Outcome{
		Result:    result,
		R2R:       &Observations{DoseErrorPct: doseErr, MeanBeamCurrentMA: meanI, DoseUniformityPct: uniformPct(exact.sigmaPct)},
		Artifacts: e.artifacts(),
	}
	e.outcome = &out
	return out
}

// finite returns &x, or nil (JSON null) when x is not finite.
func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func backgroundType(speciesName string) string {
	switch speciesName {
	case Boron, BoronF2, Indium:
		return "n"
	}
	return "p"
}

// uniformPct turns a 1σ non-uniformity (%) into the seed's "percent
// uniform" convention, 100 − σ, floored at 0 (a half-painted wafer early in
// the implant).
func uniformPct(sigmaPct float64) float64 { return max(0, 100-sigmaPct) }
