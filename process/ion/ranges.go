package ion

//go:generate go run ./internal/gentable

import (
	"fmt"
	"math"
	"sort"

	"github.com/spectra-fab/spectra/process/ion/lss"
)

// Species names as recipes spell them.
const (
	Boron      = "B"
	Phosphorus = "P"
	Arsenic    = "As"
	BoronF2    = "BF2"
	Indium     = "In"
	Antimony   = "Sb"
)

// Species lists the implantable species in the order the SPEC gives them.
var Species = []string{Boron, Phosphorus, Arsenic, BoronF2, Indium, Antimony}

// speciesInfo describes the ion the analyser selects for a species.
type speciesInfo struct {
	table  string  // momentTable key of the atom whose range is modelled
	massU  float64 // mass of the analysed (molecular) ion, u
	eScale float64 // fraction of the ion's energy the modelled atom carries
	z      float64 // atomic number of the modelled atom
}

// BF2: the B atom carries E·11/49 of the molecule's energy (masses 11 and
// 11 + 2·19; physics reference §1.3); the analyser selects ¹¹B¹⁹F₂⁺ (49.005 u).
var species = map[string]speciesInfo{
	Boron:      {table: "B", massU: 11.009, eScale: 1, z: 5},
	Phosphorus: {table: "P", massU: 30.974, eScale: 1, z: 15},
	Arsenic:    {table: "As", massU: 74.922, eScale: 1, z: 33},
	BoronF2:    {table: "B", massU: 49.005, eScale: 11.0 / 49.0, z: 5},
	Indium:     {table: "In", massU: 114.904, eScale: 1, z: 49},
	Antimony:   {table: "Sb", massU: 120.904, eScale: 1, z: 51},
}

func isSpecies(s string) bool { _, ok := species[s]; return ok }

// Moments returns the range moments of species implanted at energyKeV into
// amorphous Si at normal incidence: Rp, ΔRp, skewness γ, kurtosis β and the
// one-axis lateral straggle σ_y. They come from this package's table,
// computed by the LSS transport solver in process/ion/lss (see the package
// doc), interpolated log–log in energy for Rp, ΔRp and σ_y and linearly in
// ln E for γ and β. BF2 is its boron at E·11/49. Moments returns an error
// for an unknown species or an energy outside 1–200 keV.
func Moments(speciesName string, energyKeV float64) (lss.Moments, error) {
	info, ok := species[speciesName]
	if !ok {
		return lss.Moments{}, fmt.Errorf("moments: unknown species %q", speciesName)
	}
	if !(energyKeV >= 1 && energyKeV <= 200) {
		return lss.Moments{}, fmt.Errorf("moments: energy %g keV outside 1–200 keV", energyKeV)
	}
	m := interpolate(momentTable[info.table], energyKeV*info.eScale)
	m.EnergyKeV = energyKeV
	return m, nil
}

// interpolate reads a moment table at e (keV), which must lie inside it.
func interpolate(t []lss.Moments, e float64) lss.Moments {
	i := sort.Search(len(t), func(i int) bool { return t[i].EnergyKeV >= e })
	switch {
	case i == 0:
		return t[0]
	case i == len(t):
		return t[len(t)-1]
	}
	a, b := t[i-1], t[i]
	f := math.Log(e/a.EnergyKeV) / math.Log(b.EnergyKeV/a.EnergyKeV)
	logLerp := func(x, y float64) float64 { return math.Exp(math.Log(x) + f*(math.Log(y)-math.Log(x))) }
	lerp := func(x, y float64) float64 { return x + f*(y-x) }
	return lss.Moments{
		EnergyKeV: e,
		RpNm:      logLerp(a.RpNm, b.RpNm),
		DRpNm:     logLerp(a.DRpNm, b.DRpNm),
		Gamma:     lerp(a.Gamma, b.Gamma),
		Beta:      lerp(a.Beta, b.Beta),
		LateralNm: logLerp(a.LateralNm, b.LateralNm),
	}
}

// Tilted returns the vertical moments for a beam tilted tiltDeg from the
// wafer normal into an amorphous target (physics reference §1.5, §1.8): the
// mean depth is Rp·cos θ and the depth variance ΔRp²cos²θ + σ_y²sin²θ (the
// range ellipsoid projected on the normal); γ and β are kept. Channeling,
// which the 7° convention is there to avoid, is not modelled (see
// ChannelingAngle).
func Tilted(m lss.Moments, tiltDeg float64) lss.Moments {
	c, s := math.Cos(tiltDeg*math.Pi/180), math.Sin(tiltDeg*math.Pi/180)
	m.RpNm *= c
	m.DRpNm = math.Sqrt(m.DRpNm*m.DRpNm*c*c + m.LateralNm*m.LateralNm*s*s)
	return m
}

// ChannelingAngle returns Lindhard's critical angle ψ1 = √(2Z1Z2e²/(E·d))
// in degrees for axial channeling along Si ⟨110⟩ (d = 0.384 nm), the widest
// channel (physics reference §1.8). It overestimates the acceptance at keV
// energies; use it as a trend.
func ChannelingAngle(speciesName string, energyKeV float64) float64 {
	info, ok := species[speciesName]
	if !ok || energyKeV <= 0 {
		return 0
	}
	const e2 = 1.44e-3 // keV·nm
	const d110 = 0.384 // nm
	e := energyKeV * info.eScale
	return math.Sqrt(2*info.z*lss.SiZ*e2/(e*d110)) * 180 / math.Pi
}
