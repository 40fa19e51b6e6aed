package silicon

import "math"

// Masetti holds the parameters of the Masetti mobility model for one carrier
// and dopant, at 300 K:
//
//	μ(N) = μmin1·exp(−Pc/N) + (μmax − μmin2)/(1 + (N/Cr)^α) − μ1/(1 + (Cs/N)^β)
//
// with N the total ionised impurity concentration. Mobilities in cm²/V·s,
// concentrations in cm⁻³.
type Masetti struct {
	MuMax, MuMin1, MuMin2, Mu1 float64
	Pc, Cr, Cs                 float64
	Alpha, Beta                float64
}

// Masetti parameter sets for Si at 300 K: Masetti, Severi, Solmi, IEEE TED
// 30, 764 (1983), as tabulated in Sandia's Charon
// (src/Charon_Material_Properties.cpp); physics reference §2.1.
var (
	MasettiElectronAs = Masetti{MuMax: 1417, MuMin1: 52.2, MuMin2: 52.2, Mu1: 43.4, Pc: 0, Cr: 9.68e16, Cs: 3.43e20, Alpha: 0.680, Beta: 2.0}
	MasettiElectronP  = Masetti{MuMax: 1414, MuMin1: 68.5, MuMin2: 68.5, Mu1: 56.1, Pc: 0, Cr: 9.20e16, Cs: 3.41e20, Alpha: 0.711, Beta: 1.98}
	MasettiHoleB      = Masetti{MuMax: 470.5, MuMin1: 44.9, MuMin2: 0, Mu1: 29.0, Pc: 9.23e16, Cr: 2.23e17, Cs: 6.10e20, Alpha: 0.719, Beta: 2.0}
)

// Mobility returns μ(n) in cm²/V·s for a total ionised impurity
// concentration n in cm⁻³. For n ≤ 0 it returns the lightly doped limit.
func (m Masetti) Mobility(n float64) float64 {
	if n <= 0 || math.IsNaN(n) {
		low := m.MuMax - m.MuMin2
		if m.Pc == 0 {
			low += m.MuMin1
		}
		return low
	}
	return m.MuMin1*math.Exp(-m.Pc/n) +
		(m.MuMax-m.MuMin2)/(1+math.Pow(n/m.Cr, m.Alpha)) -
		m.Mu1/(1+math.Pow(m.Cs/n, m.Beta))
}

// Mobility returns the majority-carrier mobility in Si at 300 K, in
// cm²/V·s, for a total ionised impurity concentration n in cm⁻³ (donors
// plus acceptors). Electrons use Masetti's phosphorus set and holes his
// boron set; use MasettiElectronAs directly for arsenic-doped layers (the
// two differ by < 15 % below 1e20 cm⁻³).
func Mobility(c Carrier, n float64) float64 {
	if c == Hole {
		return MasettiHoleB.Mobility(n)
	}
	return MasettiElectronP.Mobility(n)
}

// DopantMobility is Mobility with Masetti's parameter set for species's own
// carrier and dopant: the arsenic set for As and Sb, the phosphorus set for
// P, the boron set for B, BF2 and In.
func DopantMobility(species string, n float64) float64 {
	switch canonical(species) {
	case Arsenic, Antimony:
		return MasettiElectronAs.Mobility(n)
	}
	return Mobility(DopantCarrier(species), n)
}
