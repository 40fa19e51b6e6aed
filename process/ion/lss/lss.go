// Package lss computes ion range moments in amorphous silicon from
// Lindhard–Scharff–Schiøtt (LSS) theory: the first four moments of the
// projected-range distribution and the lateral straggle, by solving the
// linearised Boltzmann transport equations for range moments (Winterbon,
// Sigmund & Sanders, Mat. Fys. Medd. Dan. Vid. Selsk. 37 no. 14, 1970).
//
// Physics:
//   - nuclear scattering: Lindhard's single-parameter cross-section
//     dσ = πa²·f(t^½)/(2t^{3/2}) dt in reduced units, with the scattering
//     function f(x) = d(x·s_n(x))/dx taken from the ZBL universal nuclear
//     stopping s_n(ε) = ln(1+1.1383ε)/(2[ε + 0.01321ε^0.21226 + 0.19593ε^0.5])
//     and the universal screening length a = 0.8854·a0/(Z1^0.23 + Z2^0.23)
//     (Ziegler, Biersack & Littmark, The Stopping and Range of Ions in
//     Solids, 1985);
//   - electronic stopping: Lindhard–Scharff, S_e = k·E^½ with
//     k_L = 1.212·Z1^{7/6}·Z2/((Z1^{2/3}+Z2^{2/3})^{3/2}·M1^{1/2}) eV·Å²/eV^½
//     (Lindhard & Scharff, Phys. Rev. 124, 128, 1961), optionally scaled by
//     an ion's k/k_L as MARLOWE and Crystal-TRIM do;
//   - target: amorphous Si, Z2 = 14, M2 = 28.086, N = 4.994e22 cm⁻³.
//
// This is the transport theory behind the Gibbons, Johnson & Mylroie tables
// (Projected Range Statistics, 2nd ed., 1975), computed here from first
// principles rather than copied; process/ion tests compare the two.
//
// The equations, for the n-th moment of the depth x of an ion of energy E
// moving at direction cosine η, F_n(E, η) = Σ_l F_n^l(E) P_l(η), are
//
//	n[l/(2l−1)·F_{n−1}^{l−1} + (l+1)/(2l+3)·F_{n−1}^{l+1}]
//	    = N·S_e·dF_n^l/dE + N∫dσ(E,T)[F_n^l(E) − P_l(cos φ)·F_n^l(E−T)],
//
// with φ the ion's laboratory scattering angle. Small energy transfers
// (T < 1 % of E) are expanded to first order; the rest is integrated
// numerically. The equations are marched upwards in energy on a
// logarithmic grid (Crank–Nicolson), starting at 0.1 eV.
package lss

import (
	"math"
)

// Silicon target constants.
const (
	SiZ       = 14.0
	SiM       = 28.086
	SiDensity = 4.994e22 // atoms/cm³ (2.329 g/cm³)
)

const (
	bohrNm  = 0.0529177
	e2KeVNm = 1.439964e-3 // e²/(4πε0) in keV·nm
)

// Moments are range statistics of an ion in amorphous Si.
type Moments struct {
	EnergyKeV float64 `json:"energy_kev"`
	RpNm      float64 `json:"rp_nm"`      // mean projected range
	DRpNm     float64 `json:"drp_nm"`     // projected straggle (standard deviation)
	Gamma     float64 `json:"gamma"`      // skewness
	Beta      float64 `json:"beta"`       // kurtosis
	LateralNm float64 `json:"lateral_nm"` // lateral straggle along one axis
}

// Ion is a projectile: atomic number and mass (u).
type Ion struct {
	Z, M float64
	// KOverKL scales the Lindhard–Scharff electronic stopping (k/k_L, as
	// in MARLOWE and Crystal-TRIM); 0 means 1.
	KOverKL float64
}

// Dopants are the ions Spectra implants (the analysed isotope's mass), by
// species name. BF2 is implanted as its boron (see process/ion).
//
// Boron's k/k_L = 1.65: Lindhard–Scharff stopping is known to underestimate
// boron's electronic stopping in Si (Z1 oscillations); the factor is fitted
// to one point, Rp(B, 100 keV) = 299.0 nm of Gibbons et al. (1975), and
// reproduces their other boron energies within a few per cent. P, As, Sb and
// In use the unmodified k_L.
var Dopants = map[string]Ion{
	"B":  {Z: 5, M: 11.009, KOverKL: 1.65},
	"P":  {Z: 15, M: 30.974},
	"As": {Z: 33, M: 74.922},
	"In": {Z: 49, M: 114.904},
	"Sb": {Z: 51, M: 120.904},
}

// index (n, l) pairs needed for four moments.
type nl struct{ n, l int }

var pairs = []nl{{1, 1}, {2, 0}, {2, 2}, {3, 1}, {3, 3}, {4, 0}, {4, 2}, {4, 4}}

// Test hooks: switch off deflection, or nuclear stopping altogether.
var (
	noDeflection = false
	nuclearScale = 1.0
)

// Grid parameters.
const (
	gridStep = 0.004 // step in ln ε
	tauCut   = 0.01  // T/E below which transfers are expanded
	nodes    = 96    // Simpson intervals (even) for large transfers
	eMinKeV  = 1e-4
)

// snZBL is the ZBL universal reduced nuclear stopping (Ziegler, Biersack &
// Littmark 1985), s_n(ε) = ln(1+1.1383ε)/(2[ε + 0.01321ε^0.21226 + 0.19593ε^0.5]).
func snZBL(e float64) float64 {
	return math.Log(1+1.1383*e) / (2 * (e + 0.01321*math.Pow(e, 0.21226) + 0.19593*math.Sqrt(e)))
}

// intF returns ∫_0^x f(u) du = x·s_n(x): Lindhard's single-parameter
// scattering function f is the one whose stopping is s_n.
func intF(x float64) float64 { return nuclearScale * x * snZBL(x) }

// fScat is Lindhard's scattering function f(t^½) consistent with the ZBL
// stopping: f(x) = d(x·s_n(x))/dx.
func fScat(x float64) float64 {
	const b = 1.1383
	l := math.Log(1 + b*x)
	d := 1 + 0.01321*math.Pow(x, 0.21226-1) + 0.19593*math.Pow(x, -0.5)
	dl := b / (1 + b*x)
	dd := (0.21226-1)*0.01321*math.Pow(x, 0.21226-2) - 0.5*0.19593*math.Pow(x, -1.5)
	return nuclearScale * (dl*d - l*dd) / (2 * d * d)
}

func legendre(l int, x float64) float64 {
	if l == 0 {
		return 1
	}
	p0, p1 := 1.0, x
	for k := 2; k <= l; k++ {
		p0, p1 = p1, ((2*float64(k)-1)*x*p1-(float64(k)-1)*p0)/float64(k)
	}
	return p1
}

// Solve returns the range moments of ion in Si at each energy (keV, > 0,
// ≤ 1000).
func Solve(ion Ion, energiesKeV []float64) []Moments {
	z1, m1, z2, m2 := ion.Z, ion.M, SiZ, SiM
	// ZBL universal screening length (nm) and reduced units built on it.
	a := 0.8854 * bohrNm / (math.Pow(z1, 0.23) + math.Pow(z2, 0.23))
	epsPerKeV := a * m2 / (z1 * z2 * e2KeVNm * (m1 + m2))
	gam := 4 * m1 * m2 / ((m1 + m2) * (m1 + m2))
	A := m2 / m1
	nDens := SiDensity * 1e-21 // nm⁻³
	rhoPerNm := nDens * math.Pi * a * a * gam
	// Lindhard–Scharff electronic stopping cross-section in eV·Å²/√eV
	// (LSS: 1.212·Z1^{7/6}·Z2/((Z1^{2/3}+Z2^{2/3})^{3/2}·M1^{1/2})), scaled by
	// the ion's k/k_L, converted to reduced units: s_e = k·√ε.
	ce := ion.KOverKL
	if ce == 0 {
		ce = 1
	}
	kl := 1.212 * math.Pow(z1, 7.0/6) * z2 / (math.Pow(math.Pow(z1, 2.0/3)+math.Pow(z2, 2.0/3), 1.5) * math.Sqrt(m1))
	// dE/dR [keV/nm] = ce·kl·√(E[eV])·N[Å⁻³]·(10 Å/nm)/1000 (eV→keV)
	//                = ce·kl·√(1000·E[keV])·N[nm⁻³]·1e-3·1e-2.
	seCoef := ce * kl * math.Sqrt(1000) * nDens * 1e-5 // keV/nm per √keV
	// s_e(ε) = dε/dρ = (dE/dR)·(ε/E)/ρPerNm = seCoef·√(ε/epsPerKeV)·epsPerKeV/ρPerNm
	k := seCoef * epsPerKeV / rhoPerNm / math.Sqrt(epsPerKeV)

	eMax := 0.0
	for _, e := range energiesKeV {
		eMax = max(eMax, e)
	}
	lnE0 := math.Log(eMinKeV * epsPerKeV)
	nGrid := int(math.Ceil((math.Log(eMax*1.01*epsPerKeV)-lnE0)/gridStep)) + 2

	// Large-transfer quadrature: x/ε = c^{1−s}, s ∈ [0, 1], with γc² = tauCut.
	c := math.Sqrt(tauCut / gam)
	type node struct {
		rel    float64 // x/ε
		w      float64 // Simpson weight × dx/ds / x (x-independent part)
		off    float64 // grid offset of ε(1−τ)
		below  bool    // ε(1−τ) ≈ 0
		cosPhi float64
	}
	qn := make([]node, nodes+1)
	for i := 0; i <= nodes; i++ {
		s := float64(i) / nodes
		rel := math.Pow(c, 1-s)
		tau := gam * rel * rel
		if tau > 1 {
			tau = 1
		}
		sw := 2.0
		switch {
		case i == 0 || i == nodes:
			sw = 1
		case i%2 == 1:
			sw = 4
		}
		nd := node{rel: rel, w: sw / (3 * nodes) * math.Log(1/c)}
		if 1-tau < 1e-12 {
			nd.below = true
		} else {
			nd.off = math.Log(1-tau) / gridStep
		}
		cp := (1 - (1+A)*tau/2) / math.Sqrt(max(1-tau, 1e-300))
		nd.cosPhi = max(-1, min(1, cp))
		if noDeflection {
			nd.cosPhi = 1
		}
		qn[i] = nd
	}

	// F[p][i]: reduced moment component pairs[p] at grid point i.
	F := make([][]float64, len(pairs))
	for p := range F {
		F[p] = make([]float64, nGrid)
	}
	idx := func(n, l int) int {
		for p, q := range pairs {
			if q.n == n && q.l == l {
				return p
			}
		}
		return -1
	}
	get := func(n, l, i int) float64 {
		if n == 0 {
			if l == 0 {
				return 1
			}
			return 0
		}
		p := idx(n, l)
		if p < 0 {
			return 0
		}
		return F[p][i]
	}
	lookup := func(p int, pos float64) float64 {
		if pos <= 0 {
			return 0
		}
		j := int(pos)
		fr := pos - float64(j)
		return F[p][j]*(1-fr) + F[p][j+1]*fr
	}
	src := func(n, l, i int) float64 {
		lf := float64(l)
		s := (lf + 1) / (2*lf + 3) * get(n-1, l+1, i)
		if l > 0 {
			s += lf / (2*lf - 1) * get(n-1, l-1, i)
		}
		return float64(n) * s
	}
	// Per-grid-point coefficients: derivative coefficient D, and the
	// large-transfer weights (ε-dependent through f(x)/x²·x).
	type coef struct {
		eps, d, g0 float64
		wl         []float64 // (1/γ)·f(x)/x·weight for each node
		sumW       float64
	}
	co := make([]coef, nGrid)
	for i := range co {
		eps := math.Exp(lnE0 + float64(i)*gridStep)
		xc := c * eps
		g0 := intF(xc)
		cf := coef{eps: eps, g0: g0, d: k*math.Sqrt(eps) + g0/eps, wl: make([]float64, nodes+1)}
		for j, nd := range qn {
			x := nd.rel * eps
			w := nd.w * fScat(x) / x / gam
			cf.wl[j] = w
			cf.sumW += w
		}
		co[i] = cf
	}
	// g returns dF/dε without the −C·F term's F (returns numerator parts).
	rate := func(p, i int) (num, cCoef float64) {
		q := pairs[p]
		cf := co[i]
		ll := float64(q.l * (q.l + 1))
		if noDeflection {
			ll = 0
		}
		cCoef = (ll*A/(4*cf.eps*cf.eps)*cf.g0 + cf.sumW) / cf.d
		in := 0.0
		for j, nd := range qn {
			if nd.below {
				continue
			}
			in += cf.wl[j] * legendre(q.l, nd.cosPhi) * lookup(p, float64(i)+nd.off)
		}
		num = (src(q.n, q.l, i) + in) / cf.d
		return num, cCoef
	}
	for i := 0; i+1 < nGrid; i++ {
		de := co[i+1].eps - co[i].eps
		for p := range pairs {
			n0, c0 := rate(p, i)
			g0 := n0 - c0*F[p][i]
			n1, c1 := rate(p, i+1)
			F[p][i+1] = (F[p][i] + de/2*g0 + de/2*n1) / (1 + de/2*c1)
		}
	}

	out := make([]Moments, len(energiesKeV))
	for ei, e := range energiesKeV {
		pos := (math.Log(e*epsPerKeV) - lnE0) / gridStep
		m := func(n int) float64 {
			s := 0.0
			for l := n % 2; l <= n; l += 2 {
				s += lookup(idx(n, l), pos)
			}
			return s / math.Pow(rhoPerNm, float64(n))
		}
		x1, x2, x3, x4 := m(1), m(2), m(3), m(4)
		v := x2 - x1*x1
		sd := math.Sqrt(v)
		m3 := x3 - 3*x1*x2 + 2*x1*x1*x1
		m4 := x4 - 4*x1*x3 + 6*x1*x1*x2 - 3*x1*x1*x1*x1
		y2 := (lookup(idx(2, 0), pos) - lookup(idx(2, 2), pos)/2) / (rhoPerNm * rhoPerNm)
		out[ei] = Moments{
			EnergyKeV: e, RpNm: x1, DRpNm: sd,
			Gamma: m3 / (v * sd), Beta: m4 / (v * v),
			LateralNm: math.Sqrt(max(y2, 0)),
		}
	}
	return out
}
