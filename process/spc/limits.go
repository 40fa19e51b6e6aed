package spc

import "math"

// Limits are the control limits of a chart: the centre line, the upper and
// lower control limits, and the σ of the plotted statistic that the zone
// rules use. Shewhart limits are Center ± 3·Sigma.
type Limits struct {
	Center float64 `json:"center"`
	UCL    float64 `json:"ucl"`
	LCL    float64 `json:"lcl"`
	Sigma  float64 `json:"sigma"`
}

// NewLimits returns the Shewhart limits center ± 3σ.
func NewLimits(center, sigma float64) Limits {
	return Limits{Center: center, UCL: center + 3*sigma, LCL: center - 3*sigma, Sigma: sigma}
}

// NewLimitsAt returns the limits center ± L·σ, for a chart designed for
// another in-control ARL than the 3σ one's 370 points (two-sided, known
// parameters: ARL₀ = 1/(2Φ(−L)); L = 3.5: 2,150; L = 3.75: 5,650).
func NewLimitsAt(center, sigma, L float64) Limits {
	return Limits{Center: center, UCL: center + L*sigma, LCL: center - L*sigma, Sigma: sigma}
}

// sigma returns the σ the zone rules use: Sigma, or, when it is not
// positive, a sixth of the span between the control limits.
func (l Limits) sigma() float64 {
	if l.Sigma > 0 {
		return l.Sigma
	}
	return (l.UCL - l.LCL) / 6
}

// d2 is the bias-correction constant of the range of n normal observations,
// E[R] = d2·σ, for n = 2…10 (Montgomery, Introduction to Statistical
// Quality Control, appendix table VI).
var d2 = [...]float64{2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534, 7: 2.704, 8: 2.847, 9: 2.970, 10: 3.078}

// IndividualsLimits returns the limits of an individuals (I-MR) chart from
// an in-control baseline: the centre is the mean, σ̂ = MR̄/1.128 with MR̄
// the mean moving range of consecutive points, and UCL/LCL = centre ± 3σ̂.
// With fewer than two points σ̂ is 0.
func IndividualsLimits(baseline []float64) Limits {
	if len(baseline) == 0 {
		return Limits{}
	}
	var sum, mr float64
	for i, x := range baseline {
		sum += x
		if i > 0 {
			mr += math.Abs(x - baseline[i-1])
		}
	}
	center := sum / float64(len(baseline))
	var sigma float64
	if len(baseline) > 1 {
		sigma = mr / float64(len(baseline)-1) / d2[2]
	}
	return NewLimits(center, sigma)
}

// XbarLimits returns the limits of an X̄ chart from in-control subgroups of
// equal size n (2 ≤ n ≤ 10): the centre is the grand mean, the process σ̂ =
// R̄/d2(n), and Sigma = σ̂/√n is the σ of a subgroup mean, so the limits are
// X̄̄ ± A2·R̄. Subgroups of another size than the first are skipped; it
// returns the zero Limits when no subgroup can be used.
func XbarLimits(subgroups [][]float64) Limits {
	if len(subgroups) == 0 {
		return Limits{}
	}
	n := len(subgroups[0])
	if n < 2 || n >= len(d2) {
		return Limits{}
	}
	var sumMean, sumRange float64
	var k int
	for _, g := range subgroups {
		if len(g) != n {
			continue
		}
		lo, hi, s := g[0], g[0], 0.0
		for _, x := range g {
			lo, hi, s = min(lo, x), max(hi, x), s+x
		}
		sumMean += s / float64(n)
		sumRange += hi - lo
		k++
	}
	sigma := sumRange / float64(k) / d2[n]
	return NewLimits(sumMean/float64(k), sigma/math.Sqrt(float64(n)))
}

// Mean returns the mean of a subgroup, the point an X̄ chart plots.
func Mean(subgroup []float64) float64 {
	if len(subgroup) == 0 {
		return 0
	}
	var s float64
	for _, x := range subgroup {
		s += x
	}
	return s / float64(len(subgroup))
}
