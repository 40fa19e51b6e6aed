package spc

import (
	"errors"
	"fmt"
	"math"
)

// T2Library is a library of good runs for the multivariate check: each
// run is a summary vector (for example mean beam current, implant time,
// pass-dose error, pressure), the library holds their mean and inverse
// covariance, and a new run's Hotelling T² = (x − x̄)ᵀ S⁻¹ (x − x̄) is
// compared with the Phase II limit for a single future observation,
//
//	UCL = p(m + 1)(m − 1) / (m(m − p)) · F₁₋α(p, m − p),
//
// with m library runs and p variables (Montgomery, Introduction to
// Statistical Quality Control, §11.3). T² sees a combination of small
// shifts that each univariate chart misses when it goes against the
// variables' correlation in good runs. Keep one library per tool and
// recipe class.
type T2Library struct {
	Mean  []float64
	SD    []float64 // per-variable standard deviation (for univariate 3σ charts)
	UCL   float64
	Alpha float64
	inv   [][]float64
	m     int
}

// NewT2Library builds a library from good runs (each a vector of the same
// length p ≥ 1, m > p + 1 runs) with false-alarm probability alpha per
// checked run.
func NewT2Library(runs [][]float64, alpha float64) (*T2Library, error) {
	m := len(runs)
	if m == 0 {
		return nil, errors.New("t2 library: no runs")
	}
	p := len(runs[0])
	if p == 0 || m <= p+1 {
		return nil, fmt.Errorf("t2 library: %d runs of %d variables, need more than %d", m, p, p+1)
	}
	if !(alpha > 0 && alpha < 1) {
		return nil, fmt.Errorf("t2 library: alpha %g outside (0, 1)", alpha)
	}
	mean := make([]float64, p)
	for _, r := range runs {
		if len(r) != p {
			return nil, fmt.Errorf("t2 library: run of %d variables, want %d", len(r), p)
		}
		for j, v := range r {
			mean[j] += v / float64(m)
		}
	}
	// A variable that does not vary makes the covariance singular; said
	// here, before the inversion, whatever the other variables hold (an
	// overflow elsewhere could otherwise hide the zero column from the
	// pivot test). A caller may then know, from the runs alone, that the
	// library does not build: some variable exactly 0 in every run.
	for j := range p {
		constant := true
		for _, r := range runs {
			if r[j]-mean[j] != 0 {
				constant = false
				break
			}
		}
		if constant {
			return nil, fmt.Errorf("t2 library: singular covariance: variable %d is constant", j)
		}
	}
	cov := make([][]float64, p)
	for i := range cov {
		cov[i] = make([]float64, p)
	}
	for _, r := range runs {
		for i := range p {
			for j := range p {
				cov[i][j] += (r[i] - mean[i]) * (r[j] - mean[j]) / float64(m-1)
			}
		}
	}
	sd := make([]float64, p)
	for i := range p {
		sd[i] = math.Sqrt(cov[i][i])
	}
	inv, err := invert(cov)
	if err != nil {
		return nil, fmt.Errorf("t2 library: %w", err)
	}
	fm, fp := float64(m), float64(p)
	ucl := fp * (fm + 1) * (fm - 1) / (fm * (fm - fp)) * FQuantile(1-alpha, fp, fm-fp)
	return &T2Library{Mean: mean, SD: sd, UCL: ucl, Alpha: alpha, inv: inv, m: m}, nil
}

// T2 returns the Hotelling T² of run x against the library.
func (l *T2Library) T2(x []float64) float64 {
	d := make([]float64, len(l.Mean))
	for i := range d {
		d[i] = x[i] - l.Mean[i]
	}
	var t2 float64
	for i := range d {
		for j := range d {
			t2 += d[i] * l.inv[i][j] * d[j]
		}
	}
	return t2
}

// Z returns the univariate standardised deviations (x − x̄)/sd of run x.
func (l *T2Library) Z(x []float64) []float64 {
	z := make([]float64, len(x))
	for i := range x {
		z[i] = (x[i] - l.Mean[i]) / l.SD[i]
	}
	return z
}

// invert returns the inverse of a symmetric positive-definite matrix by
// Gauss–Jordan elimination with partial pivoting.
func invert(a [][]float64) ([][]float64, error) {
	n := len(a)
	m := make([][]float64, n)
	for i := range a {
		m[i] = make([]float64, 2*n)
		copy(m[i], a[i])
		m[i][n+i] = 1
	}
	for c := range n {
		piv := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[piv][c]) {
				piv = r
			}
		}
		if math.Abs(m[piv][c]) < 1e-300 {
			return nil, errors.New("singular covariance: a variable is constant or a combination of others")
		}
		m[c], m[piv] = m[piv], m[c]
		f := m[c][c]
		for j := range m[c] {
			m[c][j] /= f
		}
		for r := range n {
			if r == c || m[r][c] == 0 {
				continue
			}
			g := m[r][c]
			for j := range m[r] {
				m[r][j] -= g * m[c][j]
			}
		}
	}
	out := make([][]float64, n)
	for i := range m {
		out[i] = m[i][n:]
	}
	return out, nil
}

// FQuantile returns the q-quantile of the F distribution with d1 and d2
// degrees of freedom, by bisection on its CDF.
func FQuantile(q, d1, d2 float64) float64 {
	lo, hi := 0.0, 1.0
	for FCDF(hi, d1, d2) < q {
		hi *= 2
	}
	for range 200 {
		mid := (lo + hi) / 2
		if FCDF(mid, d1, d2) < q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// FCDF returns P(F ≤ x) for the F distribution with d1 and d2 degrees of
// freedom: I_{d1x/(d1x+d2)}(d1/2, d2/2).
func FCDF(x, d1, d2 float64) float64 {
	if x <= 0 {
		return 0
	}
	return regIncBeta(d1*x/(d1*x+d2), d1/2, d2/2)
}

// regIncBeta is the regularised incomplete beta function I_x(a, b), by
// its continued fraction (modified Lentz; Numerical Recipes §6.4).
func regIncBeta(x, a, b float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	la, _ := math.Lgamma(a + b)
	lb, _ := math.Lgamma(a)
	lc, _ := math.Lgamma(b)
	front := math.Exp(la - lb - lc + a*math.Log(x) + b*math.Log(1-x))
	if x > (a+1)/(a+b+2) {
		return 1 - front*betaCF(1-x, b, a)/b
	}
	return front * betaCF(x, a, b) / a
}

func betaCF(x, a, b float64) float64 {
	const tiny = 1e-300
	c, d := 1.0, 1-(a+b)*x/(a+1)
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= 500; m++ {
		fm := float64(m)
		num := fm * (b - fm) * x / ((a + 2*fm - 1) * (a + 2*fm))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		num = -(a + fm) * (a + b + fm) * x / ((a + 2*fm) * (a + 2*fm + 1))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return h
}
