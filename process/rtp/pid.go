package rtp

import "math"

// SpanC is the pyrometer span that PID gains are normalised to: like an
// industrial controller, the PID works on the error in % of span and
// outputs % of lamp power, so Kp is dimensionless (% lamp per % span), Ki
// is in 1/s and Kd in s. With a 1000 °C span, Kp = 5 means 0.5 % of lamp
// power per °C of error.
const SpanC = 1000.0

// PID is a parallel-form PID, u = ff + Kp·(b·r − y) + Ki∫e dt + Kd·d(c·r − y)/dt,
// with errors in % of SpanC and output in % lamp power (physics reference
// §5.3, after Åström & Hägglund):
//
//   - derivative on the measurement (C = 0, the engine's) or on the
//     error (C = 1), filtered with N = 10 (time constant Td/N);
//   - anti-windup by clamping (conditional integration: the integral
//     freezes while the output is saturated and the error pushes further
//     into the limit), the default, or by back-calculation with tracking
//     time Tt = √(Ti·Td) (Tt = Ti for a PI). The engine clamps: an RTP
//     ramp-down saturates the lamps at 0 % for many seconds with a large
//     proportional term, and back-calculation with a short Tt then loads
//     the integral with the opposite of that term, so the lamps come back
//     on tens of degrees above the set-point;
//   - an optional feed-forward ff (the engine passes the model's
//     steady-state plus ramp power for the set-point) added before the
//     clamp, so the integral only learns the model error.
type PID struct {
	Kp, Ki, Kd float64
	B          float64 // set-point weight on the proportional term (1 = none)
	// C is the set-point weight in the derivative: 0 (the default of
	// §5.3, and the engine's) differentiates the measurement only, which
	// has no set-point kick but brakes every ramp by Kd times its rate;
	// 1 differentiates the error, which is safe when the set-point never
	// jumps (the engine's profile only ramps) and tracks ramps closer, but
	// then the power still in the lamp filaments when a ramp ends
	// overshoots the wafer by about rate·τ_L (≈8 °C at 50 °C/s, seed
	// recipe) — only a controller that previews the corner (the MPC)
	// avoids both.
	C        float64
	N        float64 // derivative filter
	Ts       float64 // sample period, s
	Min, Max float64 // output limits, %
	// HoldIntegral integrates only while the set-point holds (Update's
	// ramping false): on a ramp the feed-forward carries the lamp power and
	// the integral would only learn the lag of the lamps and the
	// pyrometer, which it then releases as overshoot at the end of the
	// ramp (and, after a long ramp down, as an offset at the final hold).
	HoldIntegral bool
	// BackCalculation selects back-calculation anti-windup instead of
	// clamping.
	BackCalculation bool
	// Scale converts the error from °C to the units the gains act on:
	// 100/SpanC (% of span) by default.
	Scale float64

	i, d, ePrev float64
	started     bool
}

// NewPID returns a PID with the gains of a recipe (Kp dimensionless, Ki in
// 1/s, Kd in s, all per % of SpanC) sampling every ts seconds, with output
// limited to 0–100 %.
func NewPID(kp, ki, kd, ts float64) *PID {
	return &PID{Kp: kp, Ki: ki, Kd: kd, B: 1, N: 10, Ts: ts, Min: 0, Max: 100, Scale: 100 / SpanC}
}

// trackingTime returns the back-calculation time constant Tt.
func (c *PID) trackingTime() float64 {
	switch {
	case c.Ki <= 0:
		return math.Inf(1)
	case c.Kd > 0:
		return math.Sqrt(c.Kd / c.Ki) // √(Ti·Td) = √(Kp/Ki · Kd/Kp)
	case c.Kp > 0:
		return c.Kp / c.Ki // Ti
	}
	return c.Ts
}

// Update returns the lamp command for set-point r and measurement y (°C)
// with feed-forward ff (%); ramping says whether the set-point is moving.
func (c *PID) Update(r, y, ff float64, ramping bool) float64 {
	s := c.Scale
	de := c.C*r - y // the derivative's input
	if !c.started {
		c.ePrev, c.started = de, true
	}
	p := c.Kp * (c.B*r - y) * s
	// D filtered: Tf dD/dt + D = −Kd dy/dt, backward difference.
	tf := c.Ts
	if c.Kp > 0 && c.N > 0 {
		tf = c.Kd / (c.Kp * c.N)
	}
	c.d = tf/(tf+c.Ts)*c.d + c.Kd*s/(tf+c.Ts)*(de-c.ePrev)
	c.ePrev = de
	v := ff + p + c.i + c.d
	u := min(max(v, c.Min), c.Max)
	e := (r - y) * s
	switch {
	case c.BackCalculation:
		c.i += c.Ki*c.Ts*e + c.Ts/c.trackingTime()*(u-v)
	case (v > c.Max && e > 0) || (v < c.Min && e < 0), c.HoldIntegral && ramping:
		// saturated and the error pushes further, or ramping: freeze
	default:
		c.i += c.Ki * c.Ts * e
	}
	return u
}
