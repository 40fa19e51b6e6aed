package ion

import (
	"math"
)

// Pearson is a depth distribution with given mean, standard deviation,
// skewness and kurtosis: a member of the Pearson system as SUPREM-IV
// implements it (physics reference §1.5). With s = x − Rp,
//
//	A  = 10β − 12γ² − 18,  a = −γσ(β+3)/A,
//	b0 = −σ²(4β − 3γ²)/A,  b1 = a,  b2 = −(2β − 3γ² − 6)/A,
//	df/ds = (s − a)·f/(b0 + b1·s + b2·s²),
//
// whose mode is at s = a. The quadratic's discriminant picks the type: IV
// (no real roots, unbounded), VI or I (real roots: the density lives on the
// interval around the mode where the quadratic is negative), and the
// Gaussian when γ = 0, β = 3. Moments outside the admissible region
// (β ≤ γ² + 1, or A ≤ 0) are moved just inside it.
type Pearson struct {
	Rp, Sigma, Gamma, Beta float64

	kind       string
	a, b0, b1  float64
	b2         float64
	lo, hi     float64 // support in s
	lnPeak     float64 // ln f at the mode, unnormalised
	norm       float64 // ∫f ds of exp(ln f − lnPeak) over the support
	disc, sqrt float64
}

// Pearson types as Kind reports them.
const (
	PearsonGaussian = "gaussian"
	PearsonIV       = "pearson-iv"
	PearsonVI       = "pearson-vi"
	PearsonI        = "pearson-i"
)

// NewPearson returns the Pearson distribution with mean rp, standard
// deviation sigma (> 0), skewness gamma and kurtosis beta.
func NewPearson(rp, sigma, gamma, beta float64) Pearson {
	// Admissibility: any distribution has β ≥ γ² + 1; the SUPREM
	// coefficients need A > 0.
	beta = math.Max(beta, gamma*gamma+1.01)
	beta = math.Max(beta, (12*gamma*gamma+18)/10+0.01)
	p := Pearson{Rp: rp, Sigma: sigma, Gamma: gamma, Beta: beta}
	A := 10*beta - 12*gamma*gamma - 18
	p.a = -gamma * sigma * (beta + 3) / A
	p.b0 = -sigma * sigma * (4*beta - 3*gamma*gamma) / A
	p.b1 = p.a
	p.b2 = -(2*beta - 3*gamma*gamma - 6) / A
	p.lo, p.hi = math.Inf(-1), math.Inf(1)
	p.disc = p.b1*p.b1 - 4*p.b0*p.b2
	switch {
	case math.Abs(gamma) < 1e-6 && math.Abs(beta-3) < 1e-6:
		p.kind = PearsonGaussian
	case p.disc < 0:
		p.kind = PearsonIV
		p.sqrt = math.Sqrt(-p.disc)
	default:
		p.sqrt = math.Sqrt(p.disc)
		if math.Abs(p.b2) < 1e-12 { // type III: one root of b0 + b1·s
			r := -p.b0 / p.b1
			if r > p.a {
				p.hi = r
			} else {
				p.lo = r
			}
			p.kind = PearsonVI
			break
		}
		r1 := (-p.b1 - p.sqrt) / (2 * p.b2)
		r2 := (-p.b1 + p.sqrt) / (2 * p.b2)
		if r1 > r2 {
			r1, r2 = r2, r1
		}
		switch {
		case p.a < r1:
			p.hi = r1
		case p.a > r2:
			p.lo = r2
		default:
			p.lo, p.hi = r1, r2
		}
		if p.b2 > 0 {
			p.kind = PearsonI
		} else {
			p.kind = PearsonVI
		}
	}
	p.lnPeak = p.lnf(p.a)
	p.norm = p.integrate(math.Inf(-1), math.Inf(1))
	return p
}

// Kind returns the Pearson type used.
func (p Pearson) Kind() string { return p.kind }

// Mode returns the most probable depth.
func (p Pearson) Mode() float64 { return p.Rp + p.a }

// lnf returns the unnormalised ln f at s = x − Rp.
func (p Pearson) lnf(s float64) float64 {
	if p.kind == PearsonGaussian {
		return -s * s / (2 * p.Sigma * p.Sigma)
	}
	if math.Abs(p.b2) < 1e-12 {
		// Type III: d ln f/ds = (s − a)/(b0 + b1 s).
		q := p.b0 + p.b1*s
		return s/p.b1 - (p.a+p.b0/p.b1)/p.b1*math.Log(math.Abs(q))
	}
	q := p.b0 + p.b1*s + p.b2*s*s
	var phi float64
	if p.kind == PearsonIV {
		phi = math.Atan((2*p.b2*s+p.b1)/p.sqrt) / p.sqrt
	} else {
		u := 2*p.b2*s + p.b1
		phi = math.Log(math.Abs((u-p.sqrt)/(u+p.sqrt))) / (2 * p.sqrt)
	}
	return math.Log(math.Abs(q))/(2*p.b2) - (p.b1/p.b2+2*p.a)*phi
}

// rel returns f(s)/f(mode), 0 outside the support.
func (p Pearson) rel(s float64) float64 {
	if s <= p.lo || s >= p.hi {
		return 0
	}
	v := p.lnf(s) - p.lnPeak
	if v > 0 || math.IsNaN(v) { // only rounding near the mode
		v = 0
	}
	return math.Exp(v)
}

// span returns the interval (in s) outside which f/f(mode) < 1e-12.
func (p Pearson) span() (lo, hi float64) {
	lo, hi = math.Max(p.lo, p.a-40*p.Sigma), math.Min(p.hi, p.a+40*p.Sigma)
	return lo, hi
}

// integrate returns ∫ f/f(mode) ds over [s0, s1] ∩ support, by Simpson's
// rule on 4000 intervals of the visible span.
func (p Pearson) integrate(s0, s1 float64) float64 {
	lo, hi := p.span()
	lo, hi = math.Max(lo, s0), math.Min(hi, s1)
	if hi <= lo {
		return 0
	}
	const n = 4000
	h := (hi - lo) / n
	sum := p.rel(lo) + p.rel(hi)
	for i := 1; i < n; i++ {
		w := 2.0
		if i%2 == 1 {
			w = 4
		}
		sum += w * p.rel(lo+float64(i)*h)
	}
	return sum * h / 3
}

// Density returns the probability density at depth x (per nm), normalised
// over the whole support (including x < 0).
func (p Pearson) Density(x float64) float64 {
	return p.rel(x-p.Rp) / p.norm
}

// Fraction returns the probability of a depth in [x0, x1].
func (p Pearson) Fraction(x0, x1 float64) float64 {
	return p.integrate(x0-p.Rp, x1-p.Rp) / p.norm
}

// Extent returns the depth beyond which the density is below rel times its
// peak (or the end of the support).
func (p Pearson) Extent(rel float64) float64 {
	_, hi := p.span()
	s := p.a
	step := p.Sigma / 20
	for s < hi && p.rel(s) > rel {
		s += step
	}
	return p.Rp + math.Min(s, hi)
}
