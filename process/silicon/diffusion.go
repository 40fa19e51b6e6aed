package silicon

import "math"

// Arrhenius is a thermally activated rate D0·exp(−Ea/kT).
type Arrhenius struct {
	D0 float64 // prefactor (cm²/s for diffusivities)
	Ea float64 // activation energy, eV
}

// At evaluates the rate at tempC (°C).
func (a Arrhenius) At(tempC float64) float64 {
	return a.D0 * math.Exp(-a.Ea/(Boltzmann*kelvin(tempC)))
}

// Effective intrinsic diffusivities in Si, single Arrhenius: Plummer, Deal &
// Griffin, Silicon VLSI Technology (2000), ch. 7; physics reference §3.1(b).
// D0 in cm²/s, Ea in eV. BF2 diffuses as its boron.
var plummer = map[string]Arrhenius{
	Boron:      {D0: 1.0, Ea: 3.5},
	Indium:     {D0: 1.2, Ea: 3.5},
	Arsenic:    {D0: 9.17, Ea: 3.99},
	Antimony:   {D0: 4.58, Ea: 3.88},
	Phosphorus: {D0: 4.70, Ea: 3.68},
}

// DiffusivityModel returns the effective intrinsic Arrhenius parameters
// Diffusivity uses for species, and false for an unknown species.
func DiffusivityModel(species string) (Arrhenius, bool) {
	a, ok := plummer[diffusing(species)]
	return a, ok
}

// Diffusivity returns the effective intrinsic diffusivity of species in Si
// at tempC, in cm²/s: D0·exp(−Ea/kT) with Plummer's single-Arrhenius values
// (physics reference §3.1(b); B at 1000 °C: 1.40e-14). BF2 diffuses as B.
// It returns 0 for an unknown species.
//
// This is the floor, not a prediction: transient enhanced diffusion after an
// implant can raise B and P diffusivity 10²–10⁴× for seconds to minutes, and
// at high concentration D grows with n/ni (see FairDiffusivity).
func Diffusivity(species string, tempC float64) float64 {
	a, ok := DiffusivityModel(species)
	if !ok {
		return 0
	}
	return a.At(tempC)
}

// Fair's charged-species diffusivities, the defaults of Stanford SUPREM-IV.GS
// src/data/modelrc; physics reference §3.1(a). D = D⁰ + D⁻(n/ni) +
// D⁼(n/ni)² + D⁺(p/ni).
var fair = map[string]struct{ neutral, minus, minus2, plus Arrhenius }{
	Boron:      {neutral: Arrhenius{0.037, 3.46}, plus: Arrhenius{0.76, 3.46}},
	Phosphorus: {neutral: Arrhenius{3.85, 3.66}, minus: Arrhenius{4.44, 4.00}, minus2: Arrhenius{44.2, 4.37}},
	Arsenic:    {neutral: Arrhenius{0.0666, 3.44}, minus: Arrhenius{12.8, 4.05}},
	Antimony:   {neutral: Arrhenius{0.214, 3.65}, minus: Arrhenius{15.0, 4.08}},
}

// FairDiffusivity returns Fair's charged-species diffusivity of species at
// tempC in cm²/s for an electron concentration n (cm⁻³), with p = ni²/n; n ≤ 0
// means intrinsic (n = p = ni). B at 1000 °C, intrinsic: 1.60e-14. It
// returns 0 for a species Fair's set lacks (In) or does not know.
func FairDiffusivity(species string, tempC, n float64) float64 {
	f, ok := fair[diffusing(species)]
	if !ok {
		return 0
	}
	ni := IntrinsicCarriers(tempC)
	r := 1.0 // n/ni
	if n > 0 {
		r = n / ni
	}
	return f.neutral.At(tempC) + f.minus.At(tempC)*r + f.minus2.At(tempC)*r*r + f.plus.At(tempC)/r
}

// IntrinsicCarriers returns ni in cm⁻³ at diffusion temperatures,
// 3.9e16·T^{3/2}·exp(−0.605 eV/kT) (Plummer; physics reference §3.1;
// 7.14e18 at 1000 °C). It is not meant for room temperature.
func IntrinsicCarriers(tempC float64) float64 {
	t := kelvin(tempC)
	return 3.9e16 * math.Pow(t, 1.5) * math.Exp(-0.605/(Boltzmann*t))
}

// maxStepC bounds the temperature change of one ThermalBudget sub-step: at
// 1 °C the trapezoid error on exp(−Ea/kT) stays below 1e-5 relative.
const maxStepC = 1.0

// ThermalBudget returns the diffusion thermal budget Dt = ∫D(T(t))dt of
// species in cm² (physics reference §3.2) for the temperature trace tempsC
// (°C) sampled at timesS (s, increasing). T is taken as linear between
// samples, as the trapezoid rule assumes, and each interval is integrated
// by the trapezoid rule on sub-steps of at most 1 °C, so a spike given by
// its three corner points integrates as accurately as a dense trace. It
// returns 0 for an unknown species and panics if the slices differ in
// length.
func ThermalBudget(species string, timesS, tempsC []float64) float64 {
	if len(timesS) != len(tempsC) {
		panic("silicon.ThermalBudget: times and temperatures differ in length")
	}
	a, ok := DiffusivityModel(species)
	if !ok {
		return 0
	}
	var dt float64
	for i := 0; i+1 < len(timesS); i++ {
		t0, t1 := timesS[i], timesS[i+1]
		T0, T1 := tempsC[i], tempsC[i+1]
		n := int(math.Ceil(math.Abs(T1-T0) / maxStepC))
		if n < 1 {
			n = 1
		}
		h := (t1 - t0) / float64(n)
		prev := a.At(T0)
		for j := 1; j <= n; j++ {
			next := a.At(T0 + (T1-T0)*float64(j)/float64(n))
			dt += h * (prev + next) / 2
			prev = next
		}
	}
	return dt
}

// EffectiveTime returns t_eff = Dt/D(T_peak) in s, the time at peakC that
// gives the same budget (physics reference §3.2).
func EffectiveTime(species string, budgetCm2, peakC float64) float64 {
	d := Diffusivity(species, peakC)
	if d == 0 {
		return 0
	}
	return budgetCm2 / d
}

// DiffusionLength returns 2√(Dt) in µm for a thermal budget Dt in cm², the
// "some texts" definition of physics reference §3.2. It is √2 times the
// Gaussian broadening √(2Dt) that the reference tabulates (in nm) and that
// σ² → σ² + 2Dt uses; for that, call BroadeningNm or BroadenedSigmaNm.
func DiffusionLength(budgetCm2 float64) float64 {
	if budgetCm2 <= 0 {
		return 0
	}
	return 2 * math.Sqrt(budgetCm2) * 1e4
}

// BroadeningNm returns the Fickian diffusion length √(2Dt) in nm for a
// thermal budget Dt in cm², as physics reference §3.2 tabulates it (spike
// to 1050 °C at +150/−75 °C/s, B: 2.75 nm).
func BroadeningNm(budgetCm2 float64) float64 {
	if budgetCm2 <= 0 {
		return 0
	}
	return math.Sqrt(2*budgetCm2) / nmToCm
}

// BroadenedSigmaNm returns the straggle in nm of a Gaussian profile of
// as-implanted straggle drpNm after a thermal budget Dt in cm²:
// √(ΔRp² + 2Dt), dose conserved, surface reflection ignored (physics
// reference §2.3).
func BroadenedSigmaNm(drpNm, budgetCm2 float64) float64 {
	b := BroadeningNm(budgetCm2)
	return math.Hypot(drpNm, b)
}
