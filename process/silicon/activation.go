package silicon

import "math"

// activationModel is the logistic of physics reference §2.4:
// f = fmax/(1 + exp(−(T_eff − T50)/w)).
type activationModel struct {
	fMax float64 // %
	t50  float64 // °C at the reference time
	w    float64 // °C
}

// Rough activation parameters, physics reference §2.4 ([K] unless noted):
// non-amorphising B (≤1e15 cm⁻²): T50 ≈ 850–900 °C, w ≈ 40 °C; we take 850 °C,
// which puts 800 °C at 22 %, near the ≈25 % measured after short 800 °C
// anneals of 40 keV 2e14 B (Bell Labs 1999 [S:14]). Amorphising heavy ions
// (As, Sb, In) and P at ≳5e14 regrow by solid-phase epitaxy: T50 ≈ 600 °C,
// w ≈ 25 °C.
var activation = map[string]activationModel{
	Boron:      {fMax: 100, t50: 850, w: 40},
	Phosphorus: {fMax: 100, t50: 600, w: 25},
	Arsenic:    {fMax: 100, t50: 600, w: 25},
	Antimony:   {fMax: 100, t50: 600, w: 25},
	Indium:     {fMax: 100, t50: 600, w: 25},
}

// activationRefS is the anneal time at which the T50 values apply: the
// seconds-long anneals of the data behind them.
const activationRefS = 10.0

// activationEa (eV) converts anneal time into an equivalent temperature: a
// decade of time at 1000 °C counts about as much as 90 °C, as for a
// thermally activated process with the 3.5 eV of B diffusion.
const activationEa = 3.5

// Activation returns the electrically active fraction of an implanted
// species, in %, after an anneal of timeS seconds at tempC: the empirical
// logistic of physics reference §2.4,
//
//	f = fmax / (1 + exp(−(T_eff − T50)/w)),
//
// with T50 and w per species, and T_eff the temperature that gives the same
// thermally activated progress in 10 s as tempC does in timeS
// (1/T_eff = 1/T − k·ln(t/10 s)/Ea, Ea = 3.5 eV). It returns 0 for timeS ≤ 0
// and for an unknown species.
//
// The model is rough: it ignores dose (amorphisation threshold), boron's
// reverse-annealing dip at 500–600 °C, arsenic deactivation in long
// 700–900 °C anneals, and the concentration cap; apply ActiveLimit to the
// resulting concentration. Expect ±20 percentage points.
func Activation(species string, tempC, timeS float64) float64 {
	m, ok := activation[diffusing(species)]
	if !ok || timeS <= 0 {
		return 0
	}
	t := kelvin(tempC)
	inv := 1/t - Boltzmann*math.Log(timeS/activationRefS)/activationEa
	if inv <= 0 { // absurdly long anneal: fully equivalent
		return m.fMax
	}
	teff := 1/inv - ZeroCelsius
	return m.fMax / (1 + math.Exp(-(teff-m.t50)/m.w))
}

// ActiveLimit returns the highest electrically active concentration of
// species in cm⁻³ after a ~1000–1050 °C RTA (physics reference §2.4, [K]):
// B 1.5e20, P 4e20, As 2.5e20, and the solid solubility for Sb (6e19) and In
// (1e18; In is also ~0.16 eV deep and only partly ionised at 300 K).
// Metastable values after ms anneals are higher. It returns 0 for an
// unknown species.
func ActiveLimit(species string) float64 {
	switch diffusing(species) {
	case Boron:
		return 1.5e20
	case Phosphorus:
		return 4e20
	case Arsenic:
		return 2.5e20
	case Antimony:
		return 6e19
	case Indium:
		return 1e18
	}
	return 0
}
