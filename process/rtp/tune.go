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

// RecipePerformance is what runs of the user's recipe with a controller
// report, under the run result's names (see Metrics): the worst overshoot
// after a ramp, the mean |error| while ramping and the settling time of
// the first hold at the peak (−1: it never settled within ±1 °C), as the
// mean over Runs pyrometer-noise seeds (Runs = 0: one noise-free run, the
// optimiser's objective).
type RecipePerformance struct {
	MaxOvershootC float64 `json:"max_overshoot_c"`
	AvgRampErrorC float64 `json:"avg_ramp_error_c"`
	SettlingTimeS float64 `json:"settling_time_s"`
	Runs          int     `json:"runs"`
	Spread        *Spread `json:"spread,omitempty"` // over the noise seeds
}

// Spread is the standard deviation of each metric over noise seeds: how
// far one real run may fall from the mean by pyrometer noise alone.
type Spread struct {
	MaxOvershootC float64 `json:"max_overshoot_c"`
	AvgRampErrorC float64 `json:"avg_ramp_error_c"`
	SettlingTimeS float64 `json:"settling_time_s"`
}

// Candidate is one set of gains the tuner simulated: a tuning rule (or
// the optimiser's result, or the recipe's own gains), its performance in
// the step and ramp tests, and on the user's recipe.
type Candidate struct {
	Rule              string             `json:"rule"`
	Parameters        Gains              `json:"parameters"`
	Performance       Performance        `json:"performance"`
	RecipePerformance *RecipePerformance `json:"recipe_performance,omitempty"`
}

// MPCParameters are the MPC's tuning: prediction horizon Np (100 ms
// steps) and move suppression λ (°C²/%²); a recipe takes them as
// mpc_horizon and mpc_move_weight.
type MPCParameters struct {
	Horizon    int     `json:"mpc_horizon"`
	MoveWeight float64 `json:"mpc_move_weight"`
}

// MPCCandidate is one MPC tuning the tuner simulated on the recipe.
type MPCCandidate struct {
	Parameters        MPCParameters     `json:"parameters"`
	RecipePerformance RecipePerformance `json:"recipe_performance"`
}

// Limits are the bounds the tuner keeps the metrics it is not asked to
// optimise within: no worse than the recipe's own controller by more than
// 20 % (or an absolute slack: 0.5 °C, 0.5 °C, 1 s). 0 means no limit.
type Limits struct {
	MaxOvershootC float64 `json:"max_overshoot_c,omitempty"`
	AvgRampErrorC float64 `json:"avg_ramp_error_c,omitempty"`
	SettlingTimeS float64 `json:"settling_time_s,omitempty"`
}

// TuneResult is the tuner's answer, with the seed's JSON names
// (controller_type, parameters, expected_performance, tuning_method) plus
// the relay experiment, the model identified from it, every candidate,
// the limits, and the chosen controller's predicted performance on the
// recipe beside the recipe's own (current). For controller_type mpc,
// mpc_parameters and mpc_candidates carry the MPC tuning; parameters then
// holds the PID gains the same optimisation found, for a PID fallback.
type TuneResult struct {
	ControllerType      string      `json:"controller_type"`
	Parameters          Gains       `json:"parameters"`
	ExpectedPerformance Performance `json:"expected_performance"`
	TuningMethod        string      `json:"tuning_method"`
	Relay               Relay       `json:"relay"`
	Rule                string      `json:"rule"`
	Candidates          []Candidate `json:"candidates"`

	OptimizationTarget string            `json:"optimization_target"`
	Model              FOPDT             `json:"model"`
	Limits             Limits            `json:"limits"`
	Predicted          RecipePerformance `json:"predicted_performance"`
	Current            Candidate         `json:"current"`
	CurrentMPC         *MPCCandidate     `json:"current_mpc,omitempty"`
	MPCParameters      *MPCParameters    `json:"mpc_parameters,omitempty"`
	MPCCandidates      []MPCCandidate    `json:"mpc_candidates,omitempty"`
	Evaluations        int               `json:"evaluations"`
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

// Tune auto-tunes the temperature controller for the user's recipe
// (physics reference §5.1–5.2, docs/tuning.md):
//
//  1. Identify: at the recipe's peak set-point an ideal relay of ±5 % lamp
//     with ±1 °C hysteresis runs for 30 s (Ku, Pu), an open-loop step of
//     the lamps gives the static gain K, and the two give an FOPDT model
//     (K, τ, θ) exactly for a FOPDT plant (IdentifyFOPDT).
//  2. Start from rules: every rule of Rules on (Ku, Pu) and the IMC/SIMC
//     rules on the FOPDT, each at full, ½ and ¼ size, plus the recipe's own
//     gains, each simulated on the user's recipe (the engine itself,
//     noise-free).
//  3. Optimise: a pattern search in log-gain space from the best feasible
//     start minimises the target (minimize_overshoot: max_overshoot_c,
//     minimize_ramp_error: avg_ramp_error_c, minimize_settling_time:
//     settling_time_s) while the other two stay within Limits of the
//     recipe's own gains.
//  4. Predict: the chosen and the recipe's own gains run the recipe with
//     eight pyrometer-noise seeds (the mean; settling: the median), what a
//     run, which draws its own seed, will show; if the recipe's own do
//     better on the target, they are kept (a tuner never returns worse
//     than it got).
//
// For controller_type mpc the same is done over the MPC's horizon and
// move weight (mpc_parameters). The step-test performance of the chosen
// gains stays in expected_performance for old clients. Tune is
// deterministic. It returns a *process.ValidationError for an invalid
// request.
func Tune(req TuneRequest) (TuneResult, error) {
	if err := req.validate(); err != nil {
		return TuneResult{}, err
	}
	r := req.Recipe
	r.ControllerType = ControllerPID
	if r.Kp == 0 && r.Ki == 0 {
		r.Kp = DefaultKp
	}
	r.SimulateDisturbance, r.SimulateFault = nil, nil
	flow := r.N2SLM + r.O2SLM
	prof := NewProfile(r.InitialC, r.Segments)
	peak := max(prof.PeakC(), MinTempC)

	relay, err := relayAt(peak, flow)
	if err != nil {
		return TuneResult{}, fmt.Errorf("tune at %.0f °C: %w", peak, err)
	}
	model, err := IdentifyFOPDT(staticGainAt(peak, flow), relay)
	if err != nil {
		return TuneResult{}, fmt.Errorf("tune at %.0f °C: %w", peak, err)
	}
	res := TuneResult{ControllerType: req.ControllerType, TuningMethod: TuningMethod, Relay: relay, Model: model,
		OptimizationTarget: req.OptimizationTarget}
	o := &optimiser{recipe: r, target: req.OptimizationTarget, cache: map[Gains]RecipePerformance{}}

	own := Gains{Kp: r.Kp, Ki: r.Ki, Kd: r.Kd}
	ownPerf := o.eval(own)
	o.limits = limitsFrom(ownPerf, o.target)
	res.Limits = o.limits

	starts := []Candidate{{Rule: "recipe", Parameters: own}}
	for _, rule := range Rules {
		kp, ki, kd := rule.Gains(relay.Ku, relay.Pu)
		starts = append(starts, scaled(rule.Name, kp, ki, kd)...)
	}
	for _, rule := range modelRules(model) {
		starts = append(starts, scaled(rule.name, rule.kp, rule.ki, rule.kd)...)
	}
	best := -1
	for i := range starts {
		rp := o.eval(starts[i].Parameters)
		starts[i].RecipePerformance = &rp
		if best < 0 || o.score(rp) < o.score(*starts[best].RecipePerformance) {
			best = i
		}
	}
	opt := o.search(starts[best].Parameters)
	optPerf := o.eval(opt)
	chosen := Candidate{Rule: "optimised from " + starts[best].Rule, Parameters: opt, RecipePerformance: &optPerf}
	res.Candidates = append(starts, chosen)
	for i := range res.Candidates {
		res.Candidates[i].Performance = evaluatePID(res.Candidates[i].Parameters, peak, flow)
	}

	// Predict with noise, and never return worse than the recipe's own.
	cur := Candidate{Rule: "recipe", Parameters: own, Performance: evaluatePID(own, peak, flow)}
	curNoisy := o.noisy(func(e *Recipe) { e.Kp, e.Ki, e.Kd = own.Kp, own.Ki, own.Kd })
	cur.RecipePerformance = &curNoisy
	pred := o.noisy(func(e *Recipe) { e.Kp, e.Ki, e.Kd = opt.Kp, opt.Ki, opt.Kd })
	if targetValue(pred, o.target) > targetValue(curNoisy, o.target) {
		chosen, pred = cur, curNoisy
		chosen.Rule = "recipe (no candidate did better on the target)"
	}
	res.Current = cur
	res.Rule, res.Parameters, res.ExpectedPerformance, res.Predicted = chosen.Rule, chosen.Parameters, evaluatePID(chosen.Parameters, peak, flow), pred
	if req.ControllerType == ControllerMPC {
		o.tuneMPC(&res)
	}
	res.Evaluations = o.evals
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
