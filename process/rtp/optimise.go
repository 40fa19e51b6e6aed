package rtp

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/spectra-fab/spectra/process"
)

// Tuner search settings.
const (
	searchBudget   = 40  // recipe simulations the pattern search may spend
	predictSeeds   = 8   // pyrometer-noise seeds of the prediction
	limitSlack     = 0.2 // the other metrics may be 20 % worse than the recipe's own …
	overshootSlack = 0.5 // … or this much (°C, °C, s), whichever is larger
	rampSlack      = 0.5
	settleSlack    = 1.0
	neverSettledS  = 1e3 // what "never settled" costs when settling is the target
	minGain        = 1e-3
)

// optimiser evaluates PID gains on the user's recipe with the engine
// itself and searches for the best ones on a target under limits.
type optimiser struct {
	recipe Recipe
	target string
	limits Limits
	cache  map[Gains]RecipePerformance
	evals  int
}

// runRecipe runs r to the end with the engine and returns its control
// metrics; noiseFree turns the pyrometer noise off.
func runRecipe(r Recipe, seed int64, noiseFree bool) (Metrics, bool) {
	e, err := NewEngine(r, process.Options{Seed: seed})
	if err != nil {
		return Metrics{}, false
	}
	if noiseFree {
		e.loop.pyro.rng = nil
	}
	for range e.steps + 1 {
		if e.Step().Done {
			break
		}
	}
	return e.metrics(), true
}

func perfOf(m Metrics) RecipePerformance {
	return RecipePerformance{MaxOvershootC: round(m.MaxOvershootC, 3), AvgRampErrorC: round(m.AvgRampErrorC, 3), SettlingTimeS: round(m.SettlingS, 2)}
}

// eval is the noise-free performance of gains g on the recipe (cached).
func (o *optimiser) eval(g Gains) RecipePerformance {
	if p, ok := o.cache[g]; ok {
		return p
	}
	r := o.recipe
	r.Kp, r.Ki, r.Kd = g.Kp, g.Ki, g.Kd
	o.evals++
	m, ok := runRecipe(r, 1, true)
	p := perfOf(m)
	if !ok {
		p = RecipePerformance{MaxOvershootC: math.Inf(1), AvgRampErrorC: math.Inf(1), SettlingTimeS: -1}
	}
	o.cache[g] = p
	return p
}

// noisy is the mean performance over predictSeeds noise seeds of the
// recipe as set changes it (the settling time: the median), with the
// spread (standard deviation) of each metric over the seeds; the settling
// time is −1 if the median run never settled.
func (o *optimiser) noisy(set func(*Recipe)) RecipePerformance {
	r := o.recipe
	set(&r)
	ms := make([]Metrics, predictSeeds)
	for i := range ms {
		o.evals++
		ms[i], _ = runRecipe(r, 101+int64(i), false)
	}
	return summarise(ms)
}

// summarise is the mean and spread of the runs' metrics.
func summarise(ms []Metrics) RecipePerformance {
	n := float64(len(ms))
	var over, ramp, settle []float64
	for _, m := range ms {
		over, ramp, settle = append(over, m.MaxOvershootC), append(ramp, m.AvgRampErrorC), append(settle, m.SettlingS)
	}
	meanSD := func(v []float64) (float64, float64) {
		var s, ss float64
		for _, x := range v {
			s += x
		}
		mean := s / n
		for _, x := range v {
			ss += (x - mean) * (x - mean)
		}
		if n < 2 {
			return mean, 0
		}
		return mean, math.Sqrt(ss / (n - 1))
	}
	p := RecipePerformance{Runs: len(ms), Spread: &Spread{}}
	p.MaxOvershootC, p.Spread.MaxOvershootC = meanSD(over)
	p.AvgRampErrorC, p.Spread.AvgRampErrorC = meanSD(ramp)
	// Settling is heavy-tailed (a noise excursion late in a hold restarts
	// it, or the hold ends first): report the median, a run that never
	// settled counting as the longest, and the standard deviation of the
	// runs that settled as its spread.
	var settled []float64
	for _, v := range settle {
		if v >= 0 {
			settled = append(settled, v)
		}
	}
	sorted := slices.Clone(settle)
	slices.SortFunc(sorted, func(a, b float64) int {
		inf := func(v float64) float64 {
			if v < 0 {
				return math.Inf(1)
			}
			return v
		}
		return cmp.Compare(inf(a), inf(b))
	})
	p.SettlingTimeS = sorted[(len(sorted)-1)/2]
	if len(settled) > 1 {
		m := 0.0
		for _, v := range settled {
			m += v / float64(len(settled))
		}
		for _, v := range settled {
			p.Spread.SettlingTimeS += (v - m) * (v - m) / float64(len(settled)-1)
		}
		p.Spread.SettlingTimeS = math.Sqrt(p.Spread.SettlingTimeS)
	}
	p.MaxOvershootC, p.AvgRampErrorC, p.SettlingTimeS = round(p.MaxOvershootC, 3), round(p.AvgRampErrorC, 3), round(p.SettlingTimeS, 2)
	p.Spread.MaxOvershootC, p.Spread.AvgRampErrorC, p.Spread.SettlingTimeS = round(p.Spread.MaxOvershootC, 3), round(p.Spread.AvgRampErrorC, 3), round(p.Spread.SettlingTimeS, 3)
	return p
}

// targetValue is the metric the target minimises (never settled counts as
// neverSettledS).
func targetValue(p RecipePerformance, target string) float64 {
	switch target {
	case MinimizeOvershoot:
		return p.MaxOvershootC
	case MinimizeRampError:
		return p.AvgRampErrorC
	}
	if p.SettlingTimeS < 0 {
		return neverSettledS
	}
	return p.SettlingTimeS
}

// limitsFrom bounds the metrics other than the target by the recipe's own
// performance p.
func limitsFrom(p RecipePerformance, target string) Limits {
	bound := func(v, slack float64) float64 { return max(v*(1+limitSlack), v+slack) }
	var l Limits
	if target != MinimizeOvershoot {
		l.MaxOvershootC = bound(p.MaxOvershootC, overshootSlack)
	}
	if target != MinimizeRampError {
		l.AvgRampErrorC = bound(p.AvgRampErrorC, rampSlack)
	}
	if target != MinimizeSettlingTime && p.SettlingTimeS >= 0 {
		l.SettlingTimeS = bound(p.SettlingTimeS, settleSlack)
	}
	return l
}

// score is the target value plus a steep penalty for every limit broken.
func (o *optimiser) score(p RecipePerformance) float64 {
	s := targetValue(p, o.target)
	over := func(v, lim float64) float64 {
		if lim <= 0 {
			return 0
		}
		if v < 0 { // never settled
			return 100
		}
		return max(0, v-lim) / lim * 100
	}
	return s + over(p.MaxOvershootC, o.limits.MaxOvershootC) + over(p.AvgRampErrorC, o.limits.AvgRampErrorC) + over(p.SettlingTimeS, o.limits.SettlingTimeS)
}

// search is a pattern search in log-gain space from start: it tries each
// gain ×/÷ the step, moves to any improvement, halves the step when none
// helps, and stops below 5 % steps or at the budget.
func (o *optimiser) search(start Gains) Gains {
	x := [3]float64{math.Log(max(start.Kp, minGain)), math.Log(max(start.Ki, minGain)), math.Log(max(start.Kd, minGain))}
	toGains := func(x [3]float64) Gains {
		g := func(v float64) float64 { return sig3(min(max(math.Exp(v), minGain), MaxGain)) }
		return Gains{Kp: g(x[0]), Ki: g(x[1]), Kd: g(x[2])}
	}
	best := o.score(o.eval(toGains(x)))
	step := math.Log(2)
	budget := o.evals + searchBudget
	for step > math.Log(1.05) && o.evals < budget {
		improved := false
		for i := range 3 {
			for _, dir := range []float64{1, -1} {
				y := x
				y[i] += dir * step
				if s := o.score(o.eval(toGains(y))); s < best-1e-9 {
					x, best, improved = y, s, true
				}
			}
		}
		if !improved {
			step /= 2
		}
	}
	return toGains(x)
}

// scaled returns a rule's gains at full and ½ size, rounded as they
// are reported and kept within the recipe's bounds.
func scaled(name string, kp, ki, kd float64) []Candidate {
	var out []Candidate
	for _, f := range []float64{1, 0.5} {
		g := Gains{Kp: sig3(kp * f), Ki: sig3(ki * f), Kd: sig3(kd * f)}
		if g.Kp > MaxGain || g.Ki > MaxGain || g.Kd > MaxGain || !(g.Kp > 0) {
			continue
		}
		n := name
		if f != 1 {
			n = fmt.Sprintf("%s ×%g", name, f)
		}
		out = append(out, Candidate{Rule: n, Parameters: g})
	}
	return out
}

type modelRule struct {
	name       string
	kp, ki, kd float64
}

// modelRules are the rules that use the identified FOPDT rather than
// (Ku, Pu): Skogestad's SIMC PI (τc = θ, 3θ) and the IMC PID of Rivera,
// Morari & Skogestad (1986) with λ = θ and 3θ:
// Kc = (τ + θ/2)/(K(λ + θ/2)), Ti = τ + θ/2, Td = τθ/(2τ + θ).
//
// m is in °C per % lamp; the gains come out in the PID's units (% lamp per
// % of the pyrometer span).
func modelRules(m FOPDT) []modelRule {
	m.K *= 100 / SpanC
	var out []modelRule
	for _, c := range []float64{1, 3} {
		tc := c * m.ThetaS
		kc := m.TauS / (m.K * (tc + m.ThetaS))
		ti := min(m.TauS, 4*(tc+m.ThetaS))
		out = append(out, modelRule{fmt.Sprintf("simc_pi τc=%gθ", c), kc, kc / ti, 0})
		lam := c * m.ThetaS
		kc = (m.TauS + m.ThetaS/2) / (m.K * (lam + m.ThetaS/2))
		ti = m.TauS + m.ThetaS/2
		td := m.TauS * m.ThetaS / (2*m.TauS + m.ThetaS)
		out = append(out, modelRule{fmt.Sprintf("imc_pid λ=%gθ", c), kc, kc / ti, kc * td})
	}
	return out
}

// staticGainAt measures the plant's static gain at tempC in °C per %
// lamp: an open-loop step of +2 % lamp from the steady state, noise-free,
// until it has settled.
func staticGainAt(tempC, flowSLM float64) float64 {
	const du = 2.0
	p := DefaultParams
	bias := p.SteadyLampPct(tempC, flowSLM)
	w := &Wafer{P: p, TempC: tempC, LampW: bias / 100 * p.MaxLampPowerW, FlowSLM: flowSLM}
	prev := tempC
	for range 1200 { // ≤ 120 s
		w.Advance(process.Period, bias+du, 1)
		if math.Abs(w.TempC-prev) < 1e-5 {
			break
		}
		prev = w.TempC
	}
	return (w.TempC - tempC) / du
}

// tuneMPC tunes the MPC's horizon and move weight on the recipe: a grid
// around the defaults, noise-free, with the same target and limits taken
// from the default MPC; the prediction keeps the default if it does
// better on the target.
func (o *optimiser) tuneMPC(res *TuneResult) {
	run := func(p MPCParameters, seed int64, noiseFree bool) Metrics {
		r := o.recipe
		r.ControllerType, r.MPCHorizon, r.MPCMoveWeight = ControllerMPC, p.Horizon, p.MoveWeight
		o.evals++
		m, _ := runRecipe(r, seed, noiseFree)
		return m
	}
	def := MPCParameters{Horizon: 30, MoveWeight: 20} // the recipe's own, or NewMPC's defaults
	if o.recipe.MPCHorizon > 0 {
		def.Horizon = o.recipe.MPCHorizon
	}
	if o.recipe.MPCMoveWeight > 0 {
		def.MoveWeight = o.recipe.MPCMoveWeight
	}
	defPerf := perfOf(run(def, 1, true))
	saved := o.limits
	o.limits = limitsFrom(defPerf, o.target)
	best, bestScore := def, o.score(defPerf)
	res.MPCCandidates = []MPCCandidate{{def, defPerf}}
	for _, np := range []int{15, 30, 60} {
		for _, lam := range []float64{2, 6, 20, 60, 200} {
			p := MPCParameters{Horizon: np, MoveWeight: lam}
			if p == def {
				continue
			}
			perf := perfOf(run(p, 1, true))
			res.MPCCandidates = append(res.MPCCandidates, MPCCandidate{p, perf})
			if s := o.score(perf); s < bestScore-1e-9 {
				best, bestScore = p, s
			}
		}
	}
	noisy := func(p MPCParameters) RecipePerformance {
		ms := make([]Metrics, predictSeeds)
		for i := range ms {
			ms[i] = run(p, 101+int64(i), false)
		}
		return summarise(ms)
	}
	curPerf, pred := noisy(def), noisy(best)
	if targetValue(pred, o.target) > targetValue(curPerf, o.target) {
		best, pred = def, curPerf
	}
	res.CurrentMPC = &MPCCandidate{def, curPerf}
	res.MPCParameters = &best
	res.Predicted = pred
	res.Limits = o.limits
	o.limits = saved
	res.Rule = fmt.Sprintf("mpc grid (Np %d, λ %g)", best.Horizon, best.MoveWeight)
}
