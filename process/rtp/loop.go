package rtp

import (
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
}

// newLoop returns a loop at rest at the profile's initial temperature with
// the lamps off.
func newLoop(prof *Profile, p Params, flowSLM float64, rng *rand.Rand) *loop {
	l := &loop{prof: prof, model: p}
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
	return max(1+(d.OffsetPct+d.DriftPctPerMin*(t-d.StartS)/60)/100, 0)
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
	l.wafer.Advance(ts, l.u, l.efficiency(l.t+ts/2))
	l.t += ts
	l.y = l.pyro.Read(l.wafer.TempC, ts)
	return l.prof.Setpoint(l.t)
}
