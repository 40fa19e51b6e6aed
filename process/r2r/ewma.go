package r2r

// EWMA is a single-EWMA run-to-run controller (physics reference §5.5):
//
//	a_t = λ·(y_t − b·u_t) + (1 − λ)·a_{t−1},   u_{t+1} = (T − a_t)/b
//
// Offset is a, the estimated process output at zero correction; N counts
// the updates. Gain is the model gain b (zero means 1). Applied is u_t, the
// correction the run being measured was processed with: Update assumes it
// was the controller's own recommendation, UpdateApplied says otherwise.
// The loop is stable for 0 < λ·β/b < 2 with β the true gain; under a
// linear drift δ per run it settles at an offset δ/(λ·β/b) from target
// (use DoubleEWMA to remove it).
type EWMA struct {
	Lambda  float64 `json:"lambda"`
	Target  float64 `json:"target"`
	Offset  float64 `json:"offset"`
	N       int     `json:"n"`
	Gain    float64 `json:"gain,omitempty"`
	Applied float64 `json:"applied"`
	// Min and Max clamp the recommendation when Max > Min.
	Min float64 `json:"min,omitempty"`
	Max float64 `json:"max,omitempty"`
}

// NewEWMA returns an EWMA controller with weight lambda (0 < λ ≤ 1; 0.2–0.4
// is usual) for target, with unit gain, no offset learnt yet, and its first
// recommendation as the applied correction.
func NewEWMA(lambda, target float64) EWMA {
	e := EWMA{Lambda: lambda, Target: target, Gain: 1}
	e.Applied = e.Recommend()
	return e
}

func (e EWMA) gain() float64 {
	if e.Gain == 0 {
		return 1
	}
	return e.Gain
}

// Recommend returns the correction u for the next run, (Target − Offset)/b,
// clamped to [Min, Max] when Max > Min.
func (e EWMA) Recommend() float64 {
	return clamp((e.Target-e.Offset)/e.gain(), e.Min, e.Max)
}

// Update returns the controller after a run processed with its
// recommendation measured measured.
func (e EWMA) Update(measured float64) EWMA {
	return e.UpdateApplied(measured, e.Applied)
}

// UpdateApplied returns the controller after a run processed with
// correction applied measured measured, for runs that did not use the
// recommendation (operator override, clamping elsewhere).
func (e EWMA) UpdateApplied(measured, applied float64) EWMA {
	e.Offset = e.Lambda*(measured-e.gain()*applied) + (1-e.Lambda)*e.Offset
	e.N++
	e.Applied = e.Recommend()
	return e
}

// UpdateWeighted is Update with λ scaled by reliance in [0, 1], for
// measurements of uneven trust such as virtual metrology gated by a
// reliance index (λ_VM = λ·RI, physics reference §5.8). reliance 0 leaves
// the offset unchanged (N still counts the run).
func (e EWMA) UpdateWeighted(measured, reliance float64) EWMA {
	lambda := e.Lambda
	e.Lambda *= clamp(reliance, 0, 1)
	e = e.UpdateApplied(measured, e.Applied)
	e.Lambda = lambda
	return e
}

// Reset returns the controller with its learnt offset forgotten, as after
// preventive maintenance or a chamber change.
func (e EWMA) Reset() EWMA {
	e.Offset, e.N = 0, 0
	e.Applied = e.Recommend()
	return e
}

// DoubleEWMA is the double-EWMA (predictor–corrector) controller of Butler
// & Stefani (physics reference §5.5), which also tracks a drift per run D:
//
//	a_t = λ1·(y_t − b·u_t) + (1 − λ1)·(a_{t−1} + D_{t−1})
//	D_t = λ2·(y_t − b·u_t − a_{t−1}) + (1 − λ2)·D_{t−1}
//	u_{t+1} = (T − a_t − D_t)/b
//
// Under a linear drift its steady-state offset is zero.
type DoubleEWMA struct {
	Lambda1 float64 `json:"lambda1"`
	Lambda2 float64 `json:"lambda2"`
	Target  float64 `json:"target"`
	Offset  float64 `json:"offset"`
	Drift   float64 `json:"drift"`
	N       int     `json:"n"`
	Gain    float64 `json:"gain,omitempty"`
	Applied float64 `json:"applied"`
	Min     float64 `json:"min,omitempty"`
	Max     float64 `json:"max,omitempty"`
}

// NewDoubleEWMA returns a double-EWMA controller with offset weight lambda1
// and drift weight lambda2 for target, with unit gain.
func NewDoubleEWMA(lambda1, lambda2, target float64) DoubleEWMA {
	d := DoubleEWMA{Lambda1: lambda1, Lambda2: lambda2, Target: target, Gain: 1}
	d.Applied = d.Recommend()
	return d
}

func (d DoubleEWMA) gain() float64 {
	if d.Gain == 0 {
		return 1
	}
	return d.Gain
}

// Recommend returns the correction for the next run, (T − a − D)/b, clamped
// to [Min, Max] when Max > Min.
func (d DoubleEWMA) Recommend() float64 {
	return clamp((d.Target-d.Offset-d.Drift)/d.gain(), d.Min, d.Max)
}

// Update returns the controller after a run processed with its
// recommendation measured measured.
func (d DoubleEWMA) Update(measured float64) DoubleEWMA {
	return d.UpdateApplied(measured, d.Applied)
}

// UpdateApplied returns the controller after a run processed with
// correction applied measured measured.
func (d DoubleEWMA) UpdateApplied(measured, applied float64) DoubleEWMA {
	r := measured - d.gain()*applied
	prev := d.Offset
	d.Offset = d.Lambda1*r + (1-d.Lambda1)*(prev+d.Drift)
	d.Drift = d.Lambda2*(r-prev) + (1-d.Lambda2)*d.Drift
	d.N++
	d.Applied = d.Recommend()
	return d
}

// Reset returns the controller with its learnt offset and drift forgotten.
func (d DoubleEWMA) Reset() DoubleEWMA {
	d.Offset, d.Drift, d.N = 0, 0, 0
	d.Applied = d.Recommend()
	return d
}

func clamp(u, lo, hi float64) float64 {
	if hi > lo {
		return min(max(u, lo), hi)
	}
	return u
}
