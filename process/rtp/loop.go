package rtp

import (
	"math"
	"math/rand/v2"

	"github.com/spectra-fab/spectra/process"
)

// loop is one closed loop: the simulated wafer and pyrometer, a set-point
// profile and a controller, stepped one control period at a time. The
// engine and the tuner's closed-loop simulations share it.
type loop struct {
	prof  *Profile
	model Params // the controller's nominal model (feed-forward, MPC)
	wafer Wafer
	pyro  *Pyrometer
	pid   *PID
	mpc   *MPC
	dist  *process.Disturbance

	t float64 // process time, s
	y float64 // last pyrometer reading, °C
	u float64 // last lamp command, %

	flowSLM   float64 // the recipe's gas flow
	emisApply bool    // the emissivity change has been applied to the wafer
}

// pyrometerWavelengthUm is the pyrometer's band centre: a silicon
// photodiode pyrometer at 0.95 µm (physics reference §4.2: 0.9–2.7 µm).
const pyrometerWavelengthUm = 0.95

// wienC2 is the second radiation constant hc/k in µm·K.
const wienC2 = 14388.0

// apparentC returns what a pyrometer that assumes emissivity ε reads on
// a wafer of emissivity ε·ratio at trueC (Wien approximation):
// 1/T_read = 1/T − (λ/c2)·ln(ratio).
func apparentC(trueC, ratio float64) float64 {
	if ratio == 1 {
		return trueC
	}
	tk := trueC + zeroC
	return 1/(1/tk-pyrometerWavelengthUm/wienC2*math.Log(ratio)) - zeroC
}

// newLoop returns a loop at rest at the profile's initial temperature with
// the lamps off.
func newLoop(prof *Profile, p Params, flowSLM float64, rng *rand.Rand) *loop {
	l := &loop{prof: prof, model: p, flowSLM: flowSLM}
	l.wafer = Wafer{P: p, TempC: prof.InitialC, FlowSLM: flowSLM}
	l.pyro = NewPyrometer(prof.InitialC, rng)
	l.y = l.pyro.Read(prof.InitialC, process.Period)
	return l
}

// efficiency returns the lamp efficiency at time t (1 = nominal) with the
// injected disturbance, if any.
func (l *loop) efficiency(t float64) float64 {
	d := l.dist
	if d == nil || t < d.StartS {
		return 1
	}
	eff := 1 + (d.OffsetPct+d.DriftPctPerMin*(t-d.StartS)/60)/100
	if d.Is(process.LampDegradation) && d.Active(t) {
		eff *= 1 + d.Value()/100
	}
	return max(eff, 0)
}

// flowFactor returns the fraction of the recipe's gas flow that flows.
func (l *loop) flowFactor() float64 {
	if l.flowSLM <= 0 {
		return 1
	}
	return l.wafer.FlowSLM / l.flowSLM
}

// disturb applies the catalogue disturbances that change the wafer, the
// gas or the pyrometer at time t, and returns the emissivity ratio and
// the offset the pyrometer's reading carries.
func (l *loop) disturb(t float64) (emisRatio, offsetC float64) {
	d := l.dist
	emisRatio = 1
	switch {
	case d == nil:
	case d.Is(process.PyrometerOffset) && d.Active(t):
		offsetC = d.Value()
	case d.Is(process.EmissivityChange) && d.Active(t):
		emisRatio = 1 + d.Value()/100
		if !l.emisApply {
			l.emisApply = true
			l.wafer.P.EmissivityHigh *= emisRatio
			l.wafer.P.EmissivityLow *= emisRatio
			l.wafer.P.Absorptivity *= emisRatio
		}
	case d.Is(process.GasFlowLoss):
		l.wafer.FlowSLM = l.flowSLM
		if d.Active(t) {
			l.wafer.FlowSLM = l.flowSLM * (1 - d.Value()/100)
		}
	}
	if l.emisApply && !d.Active(t) {
		l.emisApply = false
		l.wafer.P = l.model
	}
	return emisRatio, offsetC
}

// feedForward returns the nominal model's lamp command that holds the
// set-point r and ramps it at rate (°C/s): (loss(r) + m·cp(r)·rate)/(α·Pmax).
func (l *loop) feedForward(r, rate float64) float64 {
	w := l.model.LossW(r, l.wafer.FlowSLM) + l.model.HeatCapacityJK(r)*rate
	return min(max(l.model.LampPct(w, r, 1), 0), 100)
}

// step runs one control period: the controller reads the last
// measurement, the lamps and the wafer advance, the pyrometer reads. It
// returns the set-point at the end of the period.
func (l *loop) step() float64 {
	const ts = process.Period
	switch {
	case l.mpc != nil:
		l.u = l.mpc.Update(l.t, l.y, l.prof.Setpoint)
	case l.pid != nil:
		r, rate := l.prof.At(l.t)
		l.u = l.pid.Update(r, l.y, l.feedForward(r, rate), rate != 0)
	}
	ratio, offset := l.disturb(l.t + ts/2)
	l.wafer.Advance(ts, l.u, l.efficiency(l.t+ts/2))
	l.t += ts
	l.y = l.pyro.Read(apparentC(l.wafer.TempC, ratio), ts) + offset
	return l.prof.Setpoint(l.t)
}
