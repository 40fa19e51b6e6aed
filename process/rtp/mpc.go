package rtp

import "math"

// MPC is a DMC/GPC-type model-predictive controller on a linearised,
// gain-scheduled FOPDT model of the wafer (physics reference §5.4):
//
//	y[k+1] = a·y[k] + b·u[k−d] + c,  a = e^{−Ts/τ(T)}, b = K(T)(1 − a),
//	c = (1 − a)·T − b·u_ss(T)
//
// with K(T) (°C/%), τ(T) = m·cp/G and the steady-state lamp power u_ss(T)
// taken from the nominal thermal model at the temperature of each
// prediction step (the reference there: a linear time-varying model along
// the trajectory the wafer should follow), and d = 2 steps of dead time
// standing for the lamp lag and the pyrometer filter (θ ≈ 0.2 s, §4.2).
//
// A parallel model driven by the applied commands gives the noise-free
// state; the output disturbance d̂ = y − y_model (EWMA-filtered) is added to
// every prediction, which makes the controller offset-free under a lamp
// efficiency drift. The free response is propagated through the d-step
// delay first (Smith-predictor structure).
//
// The plan is the feed-forward along the reference over the horizon (the
// model inverse u_ff[k+i] = (r[k+i+d+1] − a·r[k+i+d] − c)/b, which is the
// steady-state plus ramp power of §5.4 with the lamp lag folded in), plus
// a correction δ that moves Nc times. Each period it minimises
//
//	J = Σ_{i=1..Np} (r[k+d+i] − ŷ[k+d+i])² + λ·Σ_{j<Nc} Δδ_j²
//
// unconstrained, applies the first move and clips the command to 0–100 %
// (clip-and-project; a clipped correction is not remembered, which is the
// MPC's anti-windup). The reference over the horizon is the recipe's own
// set-point profile, so the controller sees ramps coming.
type MPC struct {
	P       Params
	FlowSLM float64
	Ts      float64
	Np      int
	Blocks  []int   // the steps at which the Nc planned moves start (Blocks[0] = 0)
	Lambda  float64 // move suppression, °C²/%²
	Delay   int     // d, steps
	Beta    float64 // EWMA weight of the disturbance estimate

	lin      *linTable
	past     []float64 // u[k−d … k−1], oldest first
	delta    float64   // last correction on top of the feed-forward, %
	initialU float64   // lamp command before the first Update
	yModel   float64
	dist     float64
	started  bool

	// scratch
	f, r, ff, sens, h, rhs []float64
	g                      [][]float64
}

// NewMPC returns an MPC for the nominal model p with gas flow flowSLM,
// sampling every ts seconds, with horizon Np = 30 steps (3 s ≈ τ at
// 1000 °C), Nc = 4 moves blocked at steps 0, 2, 6 and 12 (consecutive
// moves make the plan ill-conditioned: it pushes the wrong way now and
// corrects in a later move that never comes), λ = 20 °C²/%² and d = 2.
func NewMPC(p Params, flowSLM, ts float64) *MPC {
	return &MPC{P: p, FlowSLM: flowSLM, Ts: ts, Np: 30, Blocks: []int{0, 2, 6, 12}, Lambda: 20, Delay: 2, Beta: 0.2,
		lin: newLinTable(p, flowSLM, ts)}
}

// linTable holds a, b and c of the FOPDT model every degree from 0 to
// 1400 °C, so the controller does not evaluate the radiation model per
// prediction step.
type linTable struct {
	a, b, c []float64
}

func newLinTable(p Params, flowSLM, ts float64) *linTable {
	const n = 1401
	t := &linTable{a: make([]float64, n), b: make([]float64, n), c: make([]float64, n)}
	for i := range n {
		T := float64(i)
		a := math.Exp(-ts / p.TimeConstantS(T, flowSLM))
		b := p.GainCPerPct(T, flowSLM) * (1 - a)
		t.a[i], t.b[i] = a, b
		t.c[i] = (1-a)*T - b*p.SteadyLampPct(T, flowSLM)
	}
	return t
}

// at returns the FOPDT coefficients at tempC, interpolated.
func (t *linTable) at(tempC float64) (a, b, c float64) {
	x := min(max(tempC, 0), float64(len(t.a)-1)-1e-9)
	i := int(x)
	f := x - float64(i)
	a = t.a[i] + f*(t.a[i+1]-t.a[i])
	b = t.b[i] + f*(t.b[i+1]-t.b[i])
	c = t.c[i] + f*(t.c[i+1]-t.c[i])
	return a, b, c
}

// step advances the model one period from y with input u.
func (t *linTable) step(y, u float64) float64 {
	a, b, c := t.at(y)
	return a*y + b*u + c
}

// init allocates the controller's state at the first measurement y, with
// the model at rest at y and the lamps at initialU (off unless primed).
func (m *MPC) init(y float64) {
	nc := len(m.Blocks)
	m.started = true
	m.yModel = y
	m.past = make([]float64, m.Delay)
	for i := range m.past {
		m.past[i] = m.initialU
	}
	m.f = make([]float64, m.Np)
	m.r = make([]float64, m.Np)
	m.ff = make([]float64, m.Np)
	m.g = make([][]float64, m.Np)
	for i := range m.g {
		m.g[i] = make([]float64, nc)
	}
	m.sens = make([]float64, nc)
	m.h = make([]float64, nc*nc)
	m.rhs = make([]float64, nc)
}

// prime tells a controller that has not run yet that the lamps have been
// at u (%) long enough for the wafer to be at rest at y (bumpless start
// from a steady state).
func (m *MPC) prime(u float64) { m.initialU = u }

// Update returns the lamp command for the period starting at time t given
// the measurement y (°C) and the set-point profile ref.
func (m *MPC) Update(t, y float64, ref func(float64) float64) float64 {
	nc := len(m.Blocks)
	if !m.started {
		m.init(y)
	}
	m.dist += m.Beta * (y - m.yModel - m.dist)

	// Feed-forward: the model inverse along the reference, the input that
	// puts the model output on the reference d+1 steps later.
	ts := m.Ts
	for i := range m.Np {
		r0 := ref(t + float64(m.Delay+i)*ts)
		r1 := ref(t + float64(m.Delay+i+1)*ts)
		a, b, c := m.lin.at(r0)
		m.r[i] = r1
		m.ff[i] = min(max((r1-a*r0-c)/b, 0), 100)
	}

	// Free response: through the delay with the inputs already sent, then
	// over the horizon with the feed-forward plus the last correction.
	yf := m.yModel
	for _, u := range m.past {
		yf = m.lin.step(yf, u)
	}
	clear(m.sens)
	for i := range m.Np {
		a, b, _ := m.lin.at(m.r[i])
		yf = m.lin.step(yf, min(max(m.ff[i]+m.delta, 0), 100))
		m.f[i] = yf + m.dist
		for j, start := range m.Blocks {
			in := 0.0
			if i >= start {
				in = b
			}
			m.sens[j] = a*m.sens[j] + in
			m.g[i][j] = m.sens[j]
		}
	}
	// ΔU = (GᵀG + λI)⁻¹ Gᵀ (R − F)
	for j := range nc {
		for l := range nc {
			var s float64
			for i := range m.Np {
				s += m.g[i][j] * m.g[i][l]
			}
			m.h[j*nc+l] = s
		}
		m.h[j*nc+j] += m.Lambda
		var s float64
		for i := range m.Np {
			s += m.g[i][j] * (m.r[i] - m.f[i])
		}
		m.rhs[j] = s
	}
	du := solve(m.h, m.rhs, nc)
	u := min(max(m.ff[0]+m.delta+du[0], 0), 100)
	m.delta = u - m.ff[0] // a clipped move is not remembered (anti-windup)

	// Advance the parallel model with the input that reaches the wafer now.
	delayed := u
	if m.Delay > 0 {
		delayed = m.past[0]
		copy(m.past, m.past[1:])
		m.past[m.Delay-1] = u
	}
	m.yModel = m.lin.step(m.yModel, delayed)
	return u
}

// solve solves the n×n system a·x = b (a row-major, symmetric positive
// definite here) by Gaussian elimination with partial pivoting; a and b are
// overwritten.
func solve(a, b []float64, n int) []float64 {
	for col := range n {
		p := col
		for r := col + 1; r < n; r++ {
			if math.Abs(a[r*n+col]) > math.Abs(a[p*n+col]) {
				p = r
			}
		}
		if p != col {
			for k := range n {
				a[col*n+k], a[p*n+k] = a[p*n+k], a[col*n+k]
			}
			b[col], b[p] = b[p], b[col]
		}
		piv := a[col*n+col]
		if piv == 0 {
			continue
		}
		for r := col + 1; r < n; r++ {
			f := a[r*n+col] / piv
			for k := col; k < n; k++ {
				a[r*n+k] -= f * a[col*n+k]
			}
			b[r] -= f * b[col]
		}
	}
	x := b // reuse: back-substitution reads b[r] before writing x[r]
	for r := n - 1; r >= 0; r-- {
		s := b[r]
		for k := r + 1; k < n; k++ {
			s -= a[r*n+k] * x[k]
		}
		if a[r*n+r] != 0 {
			x[r] = s / a[r*n+r]
		} else {
			x[r] = 0
		}
	}
	return x
}
