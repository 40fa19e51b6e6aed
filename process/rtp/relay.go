package rtp

import (
	"errors"
	"fmt"
	"math"
)

// plant is anything a relay or a step test can drive: one call applies u
// for one sample period and returns the measurement at its end.
type plant interface {
	step(u float64) float64
}

// fopdt is a first-order-plus-dead-time plant K·e^{−θs}/(τs + 1) sampled
// exactly (zero-order hold) every ts seconds, for checking the relay and
// PID code against the reference's analytic values.
type fopdt struct {
	a, b  float64
	y     float64
	queue []float64 // inputs in flight, oldest first
}

func newFOPDT(k, tau, theta, ts float64) *fopdt {
	a := math.Exp(-ts / tau)
	return &fopdt{a: a, b: k * (1 - a), queue: make([]float64, int(math.Round(theta/ts)))}
}

func (p *fopdt) step(u float64) float64 {
	in := u
	if len(p.queue) > 0 {
		in = p.queue[0]
		copy(p.queue, p.queue[1:])
		p.queue[len(p.queue)-1] = u
	}
	p.y = p.a*p.y + p.b*in
	return p.y
}

// waferPlant is the RTP simulator as a plant: lamp command in, pyrometer
// reading out.
type waferPlant struct {
	w    *Wafer
	pyro *Pyrometer
	ts   float64
}

func (p *waferPlant) step(u float64) float64 {
	p.w.Advance(p.ts, u, 1)
	return p.pyro.Read(p.w.TempC, p.ts)
}

// Relay is the outcome of a relay-feedback experiment (Åström & Hägglund,
// Automatica 20, 645 (1984); physics reference §5.1).
type Relay struct {
	Ku         float64 `json:"ku"`          // ultimate gain, output units per measurement unit
	Pu         float64 `json:"pu_s"`        // ultimate period, s
	AmplitudeC float64 `json:"amplitude_c"` // a: half the peak-to-peak oscillation
	RelayPct   float64 `json:"relay_pct"`   // d: relay amplitude
	HystC      float64 `json:"hysteresis_c"`
	Cycles     int     `json:"cycles"`
	OperatingC float64 `json:"operating_temp_c"`
}

// errNoLimitCycle is returned when a relay experiment does not settle into
// a limit cycle.
var errNoLimitCycle = errors.New("relay: no limit cycle")

// relayExperiment drives p with an ideal relay u = bias ± d around
// setpoint, with hysteresis ±hyst (the relay switches up below
// setpoint − hyst and down above setpoint + hyst), for n samples of ts
// seconds. It discards the first two cycles and returns the mean
// half peak-to-peak amplitude a and the mean period Pu of the rest, and
// the describing-function ultimate gain Ku = 4d/(π√(a² − ε²)).
func relayExperiment(p plant, setpoint, bias, d, hyst, ts float64, n int) (Relay, error) {
	high := true
	u := bias + d
	var ups []float64 // times of the switches up
	var amps []float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for k := range n {
		y := p.step(u)
		t := float64(k+1) * ts
		lo, hi = min(lo, y), max(hi, y)
		switch {
		case high && y > setpoint+hyst:
			high, u = false, bias-d
		case !high && y < setpoint-hyst:
			high, u = true, bias+d
			if len(ups) > 0 {
				amps = append(amps, (hi-lo)/2)
			}
			ups = append(ups, t)
			lo, hi = math.Inf(1), math.Inf(-1)
		}
	}
	const skip = 2
	if len(ups) < skip+3 {
		return Relay{}, errNoLimitCycle
	}
	ups, amps = ups[skip:], amps[skip:]
	var a float64
	for _, v := range amps {
		a += v
	}
	a /= float64(len(amps))
	pu := (ups[len(ups)-1] - ups[0]) / float64(len(ups)-1)
	if a <= hyst {
		return Relay{}, errNoLimitCycle
	}
	return Relay{
		Ku:         4 * d / (math.Pi * math.Sqrt(a*a-hyst*hyst)),
		Pu:         pu,
		AmplitudeC: a,
		RelayPct:   d,
		HystC:      hyst,
		Cycles:     len(amps),
		OperatingC: setpoint,
	}, nil
}

// Rule is a PID tuning rule from (Ku, Pu): Kp = Ku·KuFactor, Ti = Pu·TiFactor,
// Td = Pu·TdFactor (Td = 0 for a PI).
type Rule struct {
	Name     string
	KuFactor float64
	TiFactor float64
	TdFactor float64
}

// Rules are the tuning rules of physics reference §5.2 (the osPID /
// rusefi autotune table: Ziegler–Nichols 1942; Tyreus–Luyben and
// Ciancone–Marlin after C.-C. Yu, Autotuning of PID Controllers, 2nd ed.;
// Pessen, "some overshoot" and "no overshoot" after McCormack & Godfrey,
// IEEE TCST 6(1), 1998).
var Rules = []Rule{
	{"ziegler_nichols_pid", 1 / 1.7, 1 / 2.0, 1 / 8.0},
	{"tyreus_luyben_pid", 1 / 2.2, 1 / 0.45, 1 / 6.3}, // Ti = Pu/0.45 ≈ 2.2 Pu, as the table stores it
	{"ciancone_marlin_pid", 1 / 3.3, 1 / 4.4, 1 / 8.1},
	{"pessen_integral", 0.7, 0.4, 0.15},
	{"some_overshoot", 1 / 3.0, 1 / 2.0, 1 / 3.0},
	{"no_overshoot", 1 / 5.0, 1 / 2.0, 1 / 3.0},
	{"ziegler_nichols_pi", 1 / 2.2, 1 / 1.2, 0},
	{"tyreus_luyben_pi", 1 / 3.2, 1 / 0.45, 0},
}

// Gains returns the parallel-form gains (Kp, Ki = Kp/Ti, Kd = Kp·Td) the
// rule gives for ku and pu.
func (r Rule) Gains(ku, pu float64) (kp, ki, kd float64) {
	kp = ku * r.KuFactor
	ki = kp / (pu * r.TiFactor)
	kd = kp * pu * r.TdFactor
	return kp, ki, kd
}

// StepResponse is what a closed-loop set-point step measured.
type StepResponse struct {
	OvershootPct float64 // peak past the new set-point, % of the step
	SettlingS    float64 // last time outside ±2 % of the step (−1: never settled)
	SteadyErr    float64 // |mean error| over the last 20 % of the test
}

// analyseStep measures a step response y (sampled every ts from the step)
// of size step to the set-point r.
func analyseStep(y []float64, r, step, ts float64) StepResponse {
	var s StepResponse
	band := 0.02 * math.Abs(step)
	sign := math.Copysign(1, step)
	last := -1
	for i, v := range y {
		s.OvershootPct = max(s.OvershootPct, (v-r)*sign/math.Abs(step)*100)
		if math.Abs(v-r) > band {
			last = i
		}
	}
	switch {
	case last == len(y)-1:
		s.SettlingS = -1
	default:
		s.SettlingS = float64(last+1) * ts
	}
	tail := y[len(y)*4/5:]
	var m float64
	for _, v := range tail {
		m += v - r
	}
	s.SteadyErr = math.Abs(m / float64(len(tail)))
	return s
}

// FOPDT is a first-order-plus-dead-time model K·e^{−θs}/(τs + 1), in the
// units of the experiment that identified it.
type FOPDT struct {
	K      float64 `json:"k"`
	TauS   float64 `json:"tau_s"`
	ThetaS float64 `json:"theta_s"`
}

// IdentifyFOPDT returns the FOPDT whose relay limit cycle is r, given the
// plant's static gain k (in r's units). For an ideal relay ±d with
// hysteresis ε on an FOPDT plant the cycle is exact: the output peaks at
// a = Kd − (Kd − ε)e^{−θ/τ} after the switch at ε, and a half period is
// θ + τ·ln((Kd + a)/(Kd − ε)), which give
//
//	τ = Pu / (2 ln((Kd + a)/(Kd − a))),  θ = τ ln((Kd − ε)/(Kd − a)).
//
// (With ε = 0 and the reference's FOPDT(1, 10, 1), d = 1: a = 0.09516,
// Pu = 3.818 s → τ = 10, θ = 1.) A plant that is not FOPDT gets the FOPDT
// with the same static gain and limit cycle.
func IdentifyFOPDT(k float64, r Relay) (FOPDT, error) {
	kd := k * r.RelayPct
	a, eps := r.AmplitudeC, r.HystC
	if !(k > 0) || !(a > eps) || !(kd > a) || !(r.Pu > 0) {
		return FOPDT{}, fmt.Errorf("identify FOPDT: gain %g, relay %g, amplitude %g, hysteresis %g, period %g: no FOPDT has this cycle", k, r.RelayPct, a, eps, r.Pu)
	}
	tau := r.Pu / (2 * math.Log((kd+a)/(kd-a)))
	theta := tau * math.Log((kd-eps)/(kd-a))
	return FOPDT{K: k, TauS: tau, ThetaS: theta}, nil
}
