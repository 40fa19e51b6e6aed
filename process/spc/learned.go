package spc

import "math"

// Learned is a within-run chart that takes its limits from the run's own
// data, never from a model of the noise: the first Baseline points fix the
// centre (their mean) and a first σ̂ (mean moving range / d2, §5.7); σ̂
// keeps learning from the moving ranges of later points while they stay
// within the Shewhart limit, so a step inflates it by at most one range.
// Each later point is standardised, z = (x − centre)/σ̂, and checked by
//
//   - a Shewhart limit |z| > L reached by a jump of more than L/2 from
//     the point before: a step (or a spike);
//   - a two-sided tabular CUSUM on z with reference k and decision h
//     (both in σ̂ units, §5.6), or the Shewhart limit reached gradually:
//     a sustained shift or a drift. After a step the chart re-learns its
//     centre from the next Baseline points and restarts
//     its CUSUM.
//
// MinSigma floors σ̂ at a resolution below which differences are not
// physical (a gauge's resolution), so a run that happens to be very quiet
// in its baseline does not get limits tighter than the instrument.
//
// The in-control design (ARL₀ for given L, k, h on independent points, and
// what learning σ̂ from a short baseline costs) is in docs/monitoring.md.
// A Learned is deterministic and not safe for concurrent use.
type Learned struct {
	Baseline int     // points that fix the centre and the first σ̂
	L        float64 // Shewhart limit, σ̂ units
	K, H     float64 // CUSUM reference and decision interval, σ̂ units
	MinSigma float64 // floor of σ̂, in the units of the points
	// Delta, when positive, is the smallest shift worth detecting in the
	// units of the points: the CUSUM reference is then max(K, Delta/2σ̂)
	// (k = δ/2, §5.6), so a chart does not chase shifts below it.
	Delta float64
	// Track, when positive, lets the centre follow in-control points as
	// an EWMA with weight 1/Track: a slow trend that is part of normal
	// operation (a source ageing by a fraction of a percent over minutes)
	// is absorbed, while a drift much faster than Track points shows as
	// before. The centre stops following while the CUSUM is beyond h/2.
	Track float64

	n           int
	sum         float64
	prev        float64
	mrSum       float64
	mrN         int
	center      float64
	hi, lo      float64
	ready       bool
	lastInCtrl  bool
	relearn     int // points to re-learn the centre from after a step
	relN        int
	relSum      float64
	cusumFiring int
}

// Point is one point of a Learned chart after its baseline.
type Point struct {
	Ready bool    // false while the baseline (or the centre after a step) is being learned
	Z     float64 // standardised point
	Step  int     // +1 or −1 when |z| > L (−1: below the centre)
	Drift int     // +1 or −1 when the CUSUM first crossed h without a step on the same side
}

// NewLearned returns a chart that learns from baseline points, with
// Shewhart limit l and CUSUM (k, h), all in σ̂ units.
func NewLearned(baseline int, l, k, h, minSigma float64) *Learned {
	return &Learned{Baseline: max(baseline, 2), L: l, K: k, H: h, MinSigma: minSigma}
}

// Center returns the learned centre (0 before the baseline is complete).
func (c *Learned) Center() float64 { return c.center }

// Sigma returns the current σ̂ (at least MinSigma).
func (c *Learned) Sigma() float64 {
	if c.mrN == 0 {
		return c.MinSigma
	}
	return max(c.mrSum/float64(c.mrN)/d2[2], c.MinSigma)
}

// Ready reports whether the baseline is complete.
func (c *Learned) Ready() bool { return c.ready }

// Add adds a point and returns what it showed.
func (c *Learned) Add(x float64) Point {
	first := c.n == 0
	c.n++
	if !c.ready {
		if !first {
			c.mrSum += math.Abs(x - c.prev)
			c.mrN++
		}
		c.sum += x
		c.prev = x
		c.lastInCtrl = true
		if c.n == c.Baseline {
			c.center = c.sum / float64(c.n)
			c.ready = true
		}
		return Point{}
	}
	s := c.Sigma()
	if c.relN < c.relearn {
		c.relSum += x
		c.relN++
		if c.relN == c.relearn {
			c.center, c.relearn, c.relN = c.relSum/float64(c.relN), 0, 0
		}
		c.prev, c.lastInCtrl = x, false
		return Point{}
	}
	z := (x - c.center) / s
	p := Point{Ready: true, Z: z}
	in := math.Abs(z) <= c.L
	if in && c.lastInCtrl {
		c.mrSum += math.Abs(x - c.prev)
		c.mrN++
	}
	zPrev := (c.prev - c.center) / s
	c.prev, c.lastInCtrl = x, in
	sign := 1
	if z < 0 {
		sign = -1
	}
	// Beyond the limit: a jump of more than half the limit since the point
	// before is a step; arriving there gradually is a drift crossing it.
	jump := !in && math.Abs(z-zPrev) > c.L/2
	if jump {
		// A step: the chart re-learns its centre from the next points
		// (σ̂ is kept) and restarts its CUSUM, so that a drift that
		// continues after the step still shows.
		p.Step = sign
		c.relearn, c.relSum, c.relN = c.Baseline, 0, 0
		c.hi, c.lo, c.cusumFiring = 0, 0, 0
		return p
	}
	k := c.K
	if c.Delta > 0 {
		k = max(k, c.Delta/(2*s))
	}
	c.hi = max(0, c.hi+z-k)
	c.lo = max(0, c.lo-z-k)
	switch {
	case !in && c.cusumFiring != sign:
		c.cusumFiring = sign
		p.Drift = sign
	case c.hi > c.H && c.cusumFiring != 1:
		c.cusumFiring, p.Drift = 1, 1
	case c.lo > c.H && c.cusumFiring != -1:
		c.cusumFiring, p.Drift = -1, -1
	}
	if c.Track > 0 && in && c.hi < c.H/2 && c.lo < c.H/2 {
		c.center += (x - c.center) / c.Track
	}
	return p
}
