package lss

import (
	"math"
	"testing"
)

// With electronic stopping only (S_e = c·E^½) and no deflection, ions go
// straight and all lose energy alike: Rp = 2E^½/c, no straggle. A check of
// the solver's marching and moment algebra.
func TestSolveElectronicOnly(t *testing.T) {
	noDeflection, nuclearScale = true, 0
	t.Cleanup(func() { noDeflection, nuclearScale = false, 1 })
	ion := Ion{Z: 15, M: 30.974}
	kl := 1.212 * math.Pow(ion.Z, 7.0/6) * SiZ / (math.Pow(math.Pow(ion.Z, 2.0/3)+math.Pow(SiZ, 2.0/3), 1.5) * math.Sqrt(ion.M))
	c := kl * math.Sqrt(1000) * SiDensity * 1e-21 * 1e-5 // keV/nm/√keV
	for _, e := range []float64{5, 40, 150} {
		m := Solve(ion, []float64{e})[0]
		want := 2 * math.Sqrt(e) / c
		if math.Abs(m.RpNm/want-1) > 0.005 {
			t.Errorf("Solve(P, %v keV) electronic only: Rp = %.3f nm, want %.3f nm", e, m.RpNm, want)
		}
		if m.DRpNm > 0.01*want {
			t.Errorf("Solve(P, %v keV) electronic only: ΔRp = %.3f nm, want ≈ 0", e, m.DRpNm)
		}
	}
}

// Sb in Si at 40 keV against Gibbons, Johnson & Mylroie (1975): Rp 28.6 nm,
// ΔRp 8.6 nm (physics reference §1.1), within the sheet's ±15 %.
func TestSolveSbAgainstGibbons(t *testing.T) {
	m := Solve(Ion{Z: 51, M: 120.904}, []float64{40})[0]
	if math.Abs(m.RpNm/28.6-1) > 0.15 || math.Abs(m.DRpNm/8.6-1) > 0.15 {
		t.Errorf("Solve(Sb, 40 keV) = Rp %.1f, ΔRp %.1f nm, want 28.6, 8.6 ±15 %%", m.RpNm, m.DRpNm)
	}
}
