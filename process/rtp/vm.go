package rtp

import (
	"math"
	"strings"

	"github.com/spectra-fab/spectra/process/silicon"
)

// BackgroundCm3 is the substrate doping of the opposite type that junction
// depth and sheet resistance are computed against (≈ 10 Ω·cm; the
// reference's test vectors use 1e15).
const BackgroundCm3 = 1e15

// selberherr holds the Selberherr (1984) polynomial fits of the projected
// range and straggle in amorphous Si, µm, coefficients highest power first
// with a zero constant term (Selberherr, Analysis and Simulation of
// Semiconductor Devices, Springer 1984, ch. 3; physics reference §1.2,
// which finds them within ≈5 % of Gibbons for B and 15–35 % shallow for
// As/Sb at ≤ 20 keV; valid ≈ 10–300 keV).
var selberherr = map[string]struct{ rp, drp []float64 }{
	silicon.Boron: {
		rp:  []float64{-3.308e-6, 3.338e-3, 0},
		drp: []float64{5.525e-13, -4.545e-10, 1.403e-7, -2.086e-5, 1.781e-3, 0},
	},
	silicon.Phosphorus: {
		rp:  []float64{1.290e-9, -2.743e-7, 1.259e-3, 0},
		drp: []float64{-2.252e-11, 1.371e-8, -3.161e-6, 6.542e-4, 0},
	},
	silicon.Arsenic: {
		rp:  []float64{4.608e-13, -3.442e-10, 9.067e-8, -1.022e-5, 9.818e-4, 0},
		drp: []float64{1.601e-13, -1.202e-10, 3.235e-8, -3.820e-6, 3.652e-4, 0},
	},
	silicon.Antimony: {
		rp:  []float64{4.028e-13, -3.056e-10, 8.372e-8, -1.013e-5, 8.887e-4, 0},
		drp: []float64{1.084e-13, -8.310e-11, 2.311e-8, -2.885e-6, 2.674e-4, 0},
	},
}

func poly(c []float64, x float64) float64 {
	var y float64
	for _, v := range c {
		y = y*x + v
	}
	return y
}

// RangeMoments returns the projected range Rp and straggle ΔRp in nm of
// species implanted at energyKeV into amorphous Si, for the as-implanted
// Gaussian the anneal starts from. It uses the Selberherr fits; BF2 is
// boron at 11/49 of the energy (§1.3), and In is taken as Sb, which it
// matches within ≈2 % (§1.4). It is this package's own small
// approximation; process/ion owns the full range tables.
func RangeMoments(species string, energyKeV float64) (rpNm, drpNm float64) {
	s := species
	for _, d := range silicon.Dopants {
		if strings.EqualFold(species, d) {
			s = d
		}
	}
	switch s {
	case silicon.BoronF2:
		s, energyKeV = silicon.Boron, energyKeV*11/49
	case silicon.Indium:
		s = silicon.Antimony
	}
	f, ok := selberherr[s]
	if !ok {
		return 0, 0
	}
	return poly(f.rp, energyKeV) * 1000, poly(f.drp, energyKeV) * 1000
}

// VM is the virtual-metrology prediction of an anneal.
type VM struct {
	ActivationPct  float64 `json:"activation_pct"`
	DiffusionDepth float64 `json:"diffusion_depth_um"`
	SheetRes       float64 `json:"sheet_resistance_ohm_sq"`
	JunctionDepth  float64 `json:"junction_depth_um"`
	OxideNm        float64 `json:"oxide_thickness_nm"`
}

// predictImplant predicts activation, junction and sheet resistance of an
// implant after an anneal of thermal budget budgetCm2 (∫D dt of the
// species) peaking at peakC:
//
//   - activation: silicon.Activation at the peak for the effective time at
//     the peak t_eff = Dt/D(T_peak) (§2.4, §3.2);
//   - profile: the as-implanted Gaussian (Rp, ΔRp from RangeMoments)
//     broadened to σ = √(ΔRp² + 2Dt), dose conserved (§2.3);
//   - junction depth: xj = Rp + σ·√(2 ln(N_peak/N_B)) against
//     BackgroundCm3;
//   - diffusion depth: where the annealed profile falls to 1 % of its
//     peak, Rp + σ·√(2 ln 100);
//   - sheet resistance: the Masetti-mobility integral over the active
//     profile (the activated fraction, capped at the species' electrical
//     limit), silicon.SheetResistance.
func predictImplant(c ImplantContext, budgetCm2, peakC float64) (act, diffUm, rs, xjUm float64) {
	tEff := silicon.EffectiveTime(c.Species, budgetCm2, peakC)
	act = silicon.Activation(c.Species, peakC, tEff)
	rp, drp := RangeMoments(c.Species, c.EnergyKeV)
	sigma := silicon.BroadenedSigmaNm(drp, budgetCm2)
	if sigma <= 0 {
		return act, 0, math.Inf(1), 0
	}
	peak := silicon.GaussianPeak(c.DoseAtomsCm, sigma)
	xjUm = silicon.GaussianJunctionDepth(rp, sigma, peak, BackgroundCm3)
	diffUm = (rp + sigma*math.Sqrt(2*math.Log(100))) / 1000

	const n = 400
	depth := make([]float64, n)
	conc := make([]float64, n)
	end := rp + 8*sigma
	limit := silicon.ActiveLimit(c.Species)
	for i := range n {
		x := end * float64(i) / (n - 1)
		depth[i] = x
		nx := peak * math.Exp(-(x-rp)*(x-rp)/(2*sigma*sigma)) * act / 100
		if limit > 0 {
			nx = min(nx, limit)
		}
		conc[i] = nx
	}
	rs = silicon.SheetResistance(depth, conc, BackgroundCm3, silicon.DopantCarrier(c.Species))
	return act, diffUm, rs, xjUm
}

// oxideNm returns the oxide grown on (100) Si over a temperature trace
// sampled every dtS seconds in an ambient with O2 mole fraction o2Frac,
// starting from the native oxide: SUPREM-IV's thin-oxide (Massoud-type)
// extension of Deal–Grove (silicon.ThinOxide; physics reference §3.3
// recommends it for RTP, as pure Deal–Grove underestimates sub-10-nm
// growth 3–5×), stepped through one-second means of the trace. Dilution
// in N2 is approximated by scaling the time with o2Frac^0.75, the pressure
// dependence of the linear rate B/A, which dominates oxides this thin.
// Below 600 °C growth is negligible and skipped.
func oxideNm(tempsC []float64, dtS, o2Frac float64) float64 {
	x := silicon.NativeOxideNm()
	if o2Frac <= 0 {
		return x
	}
	scale := math.Pow(min(o2Frac, 1), 0.75)
	const chunk = 10
	for i := 0; i < len(tempsC); i += chunk {
		j := min(i+chunk, len(tempsC))
		var sum float64
		for _, t := range tempsC[i:j] {
			sum += t
		}
		mean := sum / float64(j-i)
		if mean < 600 {
			continue
		}
		x = silicon.ThinOxide(silicon.Si100, mean, float64(j-i)*dtS*scale, x)
	}
	return x
}
