package rtp

import (
	"fmt"
	"math"
	"slices"

	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/silicon"
)

// BackgroundCm3 is the substrate doping of the opposite type that junction
// depth and sheet resistance are computed against (≈ 10 Ω·cm; the
// reference's test vectors use 1e15).
const BackgroundCm3 = 1e15

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
//   - profile: the implant engine's own as-implanted profile
//     (ion.AsImplanted: its range tables and Pearson shape, at the
//     context's tilt), broadened by Fickian diffusion √(2Dt) with a
//     reflecting surface (ion.Profile1D.Broadened): one implant, one
//     profile, whichever engine reports it;
//   - activation: silicon.Activation at the peak for the effective time at
//     the peak t_eff = Dt/D(T_peak) (§2.4, §3.2);
//   - junction depth: where the annealed chemical profile meets
//     BackgroundCm3 (silicon.JunctionDepth);
//   - diffusion depth: where it falls below 1 % of its peak;
//   - sheet resistance: the Masetti-mobility integral over the active
//     profile (the activated fraction, capped at the species' electrical
//     limit), silicon.SheetResistance.
//
// It returns an error when the implant is outside the range tables (an
// energy outside 1–200 keV or an unknown species): the prediction is
// refused rather than extrapolated.
func predictImplant(c ImplantContext, budgetCm2, peakC float64) (act, diffUm, rs, xjUm float64, err error) {
	pr, err := ion.AsImplanted(c.Species, c.EnergyKeV, c.DoseAtomsCm, c.tilt())
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("implant virtual metrology: %w", err)
	}
	tEff := silicon.EffectiveTime(c.Species, budgetCm2, peakC)
	act = silicon.Activation(c.Species, peakC, tEff)
	depth, conc := pr.Broadened(math.Sqrt(2*max(budgetCm2, 0)) * 1e7)
	xjUm = silicon.JunctionDepth(depth, conc, BackgroundCm3)
	peak := slices.Max(conc)
	for i := len(conc) - 1; i >= 0; i-- {
		if conc[i] >= peak/100 {
			diffUm = depth[i] / 1000
			break
		}
	}
	limit := silicon.ActiveLimit(c.Species)
	active := make([]float64, len(conc))
	for i, n := range conc {
		active[i] = n * act / 100
		if limit > 0 {
			active[i] = min(active[i], limit)
		}
	}
	rs = silicon.SheetResistance(depth, active, BackgroundCm3, silicon.DopantCarrier(c.Species))
	return act, diffUm, rs, xjUm, nil
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
