package rtp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/spectra-fab/spectra/process"
)

// Optimisation targets of the tuner.
const (
	MinimizeOvershoot    = "minimize_overshoot"
	MinimizeRampError    = "minimize_ramp_error"
	MinimizeSettlingTime = "minimize_settling_time"
)

// TuningMethod is the only tuning method.
const TuningMethod = "relay_feedback"

// Tuning experiment settings.
const (
	tuneRelayPct   = 5.0  // relay amplitude d, % lamp (≈5 kW, the reference's RTP row)
	tuneHystC      = 1.0  // relay hysteresis, > 3σ of the pyrometer noise
	tuneRelayS     = 30.0 // relay experiment length
	tuneStepC      = 50.0 // closed-loop set-point step
	tuneStepS      = 20.0 // closed-loop step test length
	tuneRampC      = 150.0
	tuneRampRateCS = 50.0
	tuneSeed       = 0x7e57 // the tuner's own noise seed: tuning is deterministic
	maxOvershoot   = 2.0    // % — what minimize_overshoot guarantees
)

// TuneRequest is the body of POST /api/rtp/tune/controller.
type TuneRequest struct {
	ControllerType     string `json:"controller_type"`
	Recipe             Recipe `json:"recipe"`
	OptimizationTarget string `json:"optimization_target"`
}

// Gains are PID gains in the recipe's units (see PID).
type Gains struct {
	Kp float64 `json:"kp"`
	Ki float64 `json:"ki"`
	Kd float64 `json:"kd"`
}

// Performance is what a closed-loop simulation with the tuned controller
// measured: a tuneStepC set-point step at the recipe's peak temperature
// (overshoot in % of the step, 2 % settling time, steady-state error over
// the last 4 s) and the mean |error| of a 50 °C/s ramp into it.
type Performance struct {
	OvershootPct   float64 `json:"overshoot_pct"`
	SettlingTimeS  float64 `json:"settling_time_s"`
	SteadyStateErr float64 `json:"steady_state_error_c"`
	AvgRampErrorC  float64 `json:"avg_ramp_error_c"`
}

// Candidate is one tuning rule the tuner simulated.
type Candidate struct {
	Rule        string      `json:"rule"`
	Parameters  Gains       `json:"parameters"`
	Performance Performance `json:"performance"`
}

// TuneResult is the tuner's answer, with the seed's JSON names plus the
// relay experiment, the rule chosen and every candidate it simulated.
type TuneResult struct {
	ControllerType      string      `json:"controller_type"`
	Parameters          Gains       `json:"parameters"`
	ExpectedPerformance Performance `json:"expected_performance"`
	TuningMethod        string      `json:"tuning_method"`
	Relay               Relay       `json:"relay"`
	Rule                string      `json:"rule"`
	Candidates          []Candidate `json:"candidates"`
}

// ParseTuneRequest decodes a tune request strictly, filling the recipe's
// defaults as ParseRecipe does (only segments are required). Errors are
// *process.ValidationError with paths such as "recipe.segments[0].duration_s".
func ParseTuneRequest(data []byte) (TuneRequest, error) {
	req := TuneRequest{Recipe: NewRecipe()}
	var ve process.ValidationError
	obj, ok := decodeObject(data, "", &ve)
	if ok {
		for _, key := range sortedKeys(obj) {
			raw := obj[key]
			switch key {
			case "controller_type":
				decodeValue(raw, &req.ControllerType, key, "string", &ve)
			case "optimization_target":
				decodeValue(raw, &req.OptimizationTarget, key, "string", &ve)
			case "recipe":
				decodeRecipe(raw, &req.Recipe, "recipe", &ve, true)
			default:
				ve.Add(key, nil, "controller_type, recipe, optimization_target", "unknown field")
			}
		}
		if _, ok := obj["recipe"]; !ok {
			ve.Add("recipe", nil, "a recipe with segments", "required")
		}
	}
	if err := ve.Err(); err != nil {
		return TuneRequest{}, err
	}
	return req, nil
}

// validate checks the request; the recipe's controller_type is the
// request's.
func (req TuneRequest) validate() error {
	var ve process.ValidationError
	switch req.ControllerType {
	case ControllerPID, ControllerMPC:
	default:
		ve.Add("controller_type", req.ControllerType, "pid | mpc", "unknown controller type")
	}
	switch req.OptimizationTarget {
	case MinimizeOvershoot, MinimizeRampError, MinimizeSettlingTime:
	default:
		ve.Add("optimization_target", req.OptimizationTarget,
			"minimize_overshoot | minimize_ramp_error | minimize_settling_time", "unknown optimization target")
	}
	r := req.Recipe
	if r.ControllerType == "" {
		r.ControllerType = ControllerPID
	}
	if r.Kp == 0 && r.Ki == 0 {
		r.Kp = DefaultKp
	}
	if err := r.Validate(); err != nil {
		if v, ok := errors.AsType[*process.ValidationError](err); ok {
			for _, f := range v.Fields {
				f.Field = "recipe." + f.Field
				ve.Fields = append(ve.Fields, f)
			}
		}
	}
	return ve.Err()
}

// Tune auto-tunes the temperature controller for a recipe by relay
// feedback (Åström–Hägglund; physics reference §5.1–5.2):
//
//  1. The simulated wafer is held at the recipe's peak set-point and an
//     ideal relay of ±5 % lamp power with ±1 °C hysteresis is closed
//     around it for 30 s; the limit cycle gives Ku = 4d/(π√(a² − ε²)) (in
//     % lamp per % of the pyrometer span, the PID's units) and Pu.
//  2. Every rule of Rules turns (Ku, Pu) into gains, also tried at ½, ¼
//     and ⅛ of their size (same Ti and Td), and each candidate
//     runs two closed-loop simulations of the engine's own controller
//     (PID with the model feed-forward and hold-only integration): a 50 °C
//     set-point step into the peak, and a 150 °C ramp at 50 °C/s into it.
//  3. The target picks: minimize_overshoot the least overshoot (the gains
//     are detuned until it is below 2 %), minimize_settling_time the
//     shortest 2 % settling time, minimize_ramp_error the least ramp error;
//     ties go to the shorter settling time.
//
// The reported performance is what the simulation measured with the
// reported (rounded) gains. For controller_type mpc the relay and the
// PID gains are the same (a PID fallback: the recipe has no MPC
// parameters), and the performance is the MPC's own in the same tests.
// Tune is deterministic. It returns a *process.ValidationError for an
// invalid request.
func Tune(req TuneRequest) (TuneResult, error) {
	if err := req.validate(); err != nil {
		return TuneResult{}, err
	}
	r := req.Recipe
	flow := r.N2SLM + r.O2SLM
	prof := NewProfile(r.InitialC, r.Segments)
	peak := max(prof.PeakC(), MinTempC)

	relay, err := relayAt(peak, flow)
	if err != nil {
		return TuneResult{}, fmt.Errorf("tune at %.0f °C: %w", peak, err)
	}
	res := TuneResult{ControllerType: req.ControllerType, TuningMethod: TuningMethod, Relay: relay}
	for _, rule := range Rules {
		kp, ki, kd := rule.Gains(relay.Ku, relay.Pu)
		for _, f := range detune {
			g := Gains{Kp: sig3(kp * f), Ki: sig3(ki * f), Kd: sig3(kd * f)}
			if g.Kp > MaxGain || g.Ki > MaxGain || g.Kd > MaxGain {
				continue
			}
			name := rule.Name
			if f != 1 {
				name = fmt.Sprintf("%s ×%g", rule.Name, f)
			}
			res.Candidates = append(res.Candidates, Candidate{Rule: name, Parameters: g, Performance: evaluatePID(g, peak, flow)})
		}
	}
	best := pick(res.Candidates, req.OptimizationTarget)
	if best < 0 {
		return TuneResult{}, fmt.Errorf("tune at %.0f °C: no rule gave a settling loop", peak)
	}
	c := res.Candidates[best]
	if req.OptimizationTarget == MinimizeOvershoot {
		rule := c.Rule
		for i := 0; c.Performance.OvershootPct >= maxOvershoot && i < 20; i++ {
			g := Gains{Kp: sig3(c.Parameters.Kp * 0.8), Ki: sig3(c.Parameters.Ki * 0.7), Kd: sig3(c.Parameters.Kd * 0.8)}
			c = Candidate{Rule: rule, Parameters: g, Performance: evaluatePID(g, peak, flow)}
			rule = fmt.Sprintf("%s detuned %d×", res.Candidates[best].Rule, i+1)
		}
		c.Rule = rule
	}
	res.Rule, res.Parameters, res.ExpectedPerformance = c.Rule, c.Parameters, c.Performance
	if req.ControllerType == ControllerMPC {
		res.ExpectedPerformance = evaluate(peak, flow, func(l *loop) { l.mpc = NewMPC(DefaultParams, flow, process.Period) })
	}
	return res, nil
}

// UnmarshalJSON decodes a tune request with ParseTuneRequest's rules.
func (req *TuneRequest) UnmarshalJSON(data []byte) error {
	r, err := ParseTuneRequest(data)
	if err != nil {
		return err
	}
	*req = r
	return nil
}

var _ json.Unmarshaler = (*TuneRequest)(nil)

// detune are the factors each rule's gains are also tried at: the
// feed-forward carries most of an RTP ramp, so the rules' full gains
// (designed for feedback alone) are often more than the loop needs.
var detune = []float64{1, 0.5, 0.25, 0.125}

// pick returns the index of the best candidate for target among those
// that settled, or −1.
func pick(cs []Candidate, target string) int {
	best := -1
	score := func(p Performance) float64 {
		switch target {
		case MinimizeOvershoot:
			return p.OvershootPct
		case MinimizeRampError:
			return p.AvgRampErrorC
		}
		return p.SettlingTimeS
	}
	for i, c := range cs {
		if c.Performance.SettlingTimeS < 0 {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		s, b := score(c.Performance), score(cs[best].Performance)
		if s < b-1e-9 || (math.Abs(s-b) <= 1e-9 && c.Performance.SettlingTimeS < cs[best].Performance.SettlingTimeS) {
			best = i
		}
	}
	return best
}

// relayAt runs the relay experiment on the simulated wafer held at tempC.
func relayAt(tempC, flowSLM float64) (Relay, error) {
	p := DefaultParams
	bias := p.SteadyLampPct(tempC, flowSLM)
	w := &Wafer{P: p, TempC: tempC, LampW: bias / 100 * p.MaxLampPowerW, FlowSLM: flowSLM}
	rng := rand.New(rand.NewPCG(tuneSeed, 1))
	pl := &waferPlant{w: w, pyro: NewPyrometer(tempC, rng), ts: process.Period}
	// The PID sees % of span: run the relay in those units.
	s := 100 / SpanC
	sp := &scaledPlant{p: pl, scale: s}
	relay, err := relayExperiment(sp, tempC*s, bias, tuneRelayPct, tuneHystC*s, process.Period, int(tuneRelayS/process.Period))
	if err != nil {
		return Relay{}, err
	}
	relay.AmplitudeC /= s
	relay.HystC /= s
	relay.OperatingC = tempC
	return relay, nil
}

// scaledPlant reports a plant's measurement multiplied by scale.
type scaledPlant struct {
	p     plant
	scale float64
}

func (s *scaledPlant) step(u float64) float64 { return s.p.step(u) * s.scale }

// evaluatePID measures the engine's PID with gains g at tempC.
func evaluatePID(g Gains, tempC, flowSLM float64) Performance {
	return evaluate(tempC, flowSLM, func(l *loop) {
		c := NewPID(g.Kp, g.Ki, g.Kd, process.Period)
		c.HoldIntegral = true
		l.pid = c
	})
}

// evaluate runs the step and ramp tests with the controller install puts
// in a loop.
func evaluate(tempC, flowSLM float64, install func(*loop)) Performance {
	// A recipe step: the set-point ramps at the limit rate (0.5 s).
	step := NewProfile(tempC-tuneStepC, []Segment{{TargetC: tempC, DurationS: tuneStepS}})
	y := smooth(runProfile(&step, flowSLM, install), 5)
	sr := analyseStep(y, tempC, tuneStepC, process.Period)

	rate := tuneRampRateCS
	ramp := NewProfile(tempC-tuneRampC, []Segment{{TargetC: tempC, DurationS: 5, RampRateCS: &rate}})
	y = runProfile(&ramp, flowSLM, install)
	var sum float64
	var n int
	for i, v := range y {
		t := float64(i+1) * process.Period
		if t <= ramp.Phases[0].EndS {
			sum += math.Abs(ramp.Setpoint(t) - v)
			n++
		}
	}
	return Performance{
		OvershootPct:   round(sr.OvershootPct, 2),
		SettlingTimeS:  round(sr.SettlingS, 2),
		SteadyStateErr: round(sr.SteadyErr, 3),
		AvgRampErrorC:  round(sum/float64(max(n, 1)), 3),
	}
}

// runProfile runs prof from a steady state at its initial temperature and
// returns the measurements.
func runProfile(prof *Profile, flowSLM float64, install func(*loop)) []float64 {
	rng := rand.New(rand.NewPCG(tuneSeed, 2))
	l := newLoop(prof, DefaultParams, flowSLM, rng)
	install(l)
	u0 := DefaultParams.SteadyLampPct(prof.InitialC, flowSLM)
	l.wafer.LampW = u0 / 100 * DefaultParams.MaxLampPowerW
	if l.mpc != nil {
		l.mpc.prime(u0)
	}
	n := int(math.Ceil(prof.TotalS/process.Period - 1e-9))
	y := make([]float64, n)
	for i := range n {
		l.step()
		y[i] = l.y
	}
	return y
}

// smooth returns the moving mean of y over n samples (fewer at the
// start): what the tuner judges, so that pyrometer noise is not counted as
// overshoot.
func smooth(y []float64, n int) []float64 {
	out := make([]float64, len(y))
	var acc float64
	for i, v := range y {
		acc += v
		if i >= n {
			acc -= y[i-n]
		}
		out[i] = acc / float64(min(i+1, n))
	}
	return out
}

// sig3 rounds to three significant digits, as gains are reported.
func sig3(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	return f
}
