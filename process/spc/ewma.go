package spc

import "math"

// EWMAChart is an exponentially weighted moving-average control chart
// (physics reference §5.7; Lucas & Saccucci, Technometrics 32(1), 1 (1990)):
//
//	z_i = λ·x_i + (1 − λ)·z_{i−1},  z_0 = μ0
//	limits μ0 ± L·σ·√(λ/(2−λ)·[1 − (1−λ)^{2i}])
//
// It detects small sustained shifts sooner than a Shewhart chart. Lucas and
// Saccucci's ARL0 ≈ 500 designs: λ = 0.05, L = 2.615; 0.10, 2.814;
// 0.20, 2.962; 0.25, 2.998; 0.40, 3.054. After a signal z restarts at μ0.
// An EWMAChart is deterministic and not safe for concurrent use.
type EWMAChart struct {
	target, sigma, lambda, l float64
	asymptotic               bool
	z                        float64
	i                        int // points since the last restart
	n                        int
}

// NewEWMAChart returns an EWMA chart for in-control mean target and
// standard deviation sigma of the individual points, weight lambda (0 < λ ≤ 1)
// and limit width L in σ units, with the exact time-varying limits.
func NewEWMAChart(target, sigma, lambda, L float64) *EWMAChart {
	return &EWMAChart{target: target, sigma: sigma, lambda: lambda, l: L, z: target}
}

// SetAsymptotic makes the chart use its steady-state limits
// μ0 ± Lσ√(λ/(2−λ)) from the first point, as the ARL tables assume.
func (c *EWMAChart) SetAsymptotic(on bool) { c.asymptotic = on }

// Add adds a point and reports whether the EWMA left the upper or the
// lower limit.
func (c *EWMAChart) Add(x float64) (high, low bool) {
	c.n++
	c.i++
	c.z = c.lambda*x + (1-c.lambda)*c.z
	l := c.Limits()
	high, low = c.z > l.UCL, c.z < l.LCL
	if high || low {
		c.z, c.i = c.target, 0
	}
	return high, low
}

// Value returns the current EWMA z (the target after a restart).
func (c *EWMAChart) Value() float64 { return c.z }

// Len returns how many points c has seen.
func (c *EWMAChart) Len() int { return c.n }

// Limits returns the chart's limits for the latest point: Center μ0 and
// Sigma the σ of z, so that UCL/LCL = μ0 ± L·Sigma.
func (c *EWMAChart) Limits() Limits {
	v := c.lambda / (2 - c.lambda)
	if !c.asymptotic {
		v *= 1 - math.Pow(1-c.lambda, float64(2*max(c.i, 1)))
	}
	s := c.sigma * math.Sqrt(v)
	return Limits{Center: c.target, UCL: c.target + c.l*s, LCL: c.target - c.l*s, Sigma: s}
}
