package rtp

import (
	"math"
	"strings"
	"testing"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/silicon"
)

// One physics: for the same implant the RTP virtual metrology starts from
// the implant engine's profile. Before diffusion (zero thermal budget) its
// junction depth is the one of the profile the implant endpoint reports,
// within 5 % (here: to rounding), for every species including In (which
// the old RTP polynomial treated as Sb, up to 72 % shallower).
func TestVMJunctionMatchesImplantProfile(t *testing.T) {
	for _, c := range []struct {
		species string
		kev     float64
		dose    float64
	}{
		{"B", 10, 1e15}, {"B", 40, 1e14}, {"P", 40, 1e15}, {"P", 80, 2e14}, {"As", 80, 5e15},
		{"BF2", 49, 1e15}, {"Sb", 100, 1e14}, {"In", 100, 1e14}, {"In", 10, 1e13}, {"As", 5, 1e15},
	} {
		prof, err := ion.SimulateDoseProfile(ion.ProfileRequest{Species: c.species, EnergyKeV: c.kev, DoseAtomsCm2: c.dose, TiltDeg: 7})
		if err != nil {
			t.Fatal(err)
		}
		want := silicon.JunctionDepth(prof.Profile1D.DepthNm, prof.Profile1D.ConcentrationCm3, BackgroundCm3)
		_, _, _, got, err := predictImplant(ImplantContext{Species: c.species, EnergyKeV: c.kev, DoseAtomsCm: c.dose}, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got/want-1) > 0.05 {
			t.Errorf("%s %g keV %g: RTP VM xj %.4f µm, implant profile %.4f µm", c.species, c.kev, c.dose, got, want)
		}
	}
	// In is its own ion, not Sb.
	_, _, _, in, _ := predictImplant(ImplantContext{Species: "In", EnergyKeV: 100, DoseAtomsCm: 1e14}, 0, 1000)
	_, _, _, sb, _ := predictImplant(ImplantContext{Species: "Sb", EnergyKeV: 100, DoseAtomsCm: 1e14}, 0, 1000)
	if in == sb {
		t.Errorf("In and Sb give the same junction %.4f µm", in)
	}
}

// Diffusion deepens the junction, and an implant outside the tables is
// refused with a warning instead of extrapolated.
func TestVMDiffusionAndRefusal(t *testing.T) {
	ctx := ImplantContext{Species: "B", EnergyKeV: 20, DoseAtomsCm: 1e15}
	_, _, _, x0, _ := predictImplant(ctx, 0, 1000)
	_, _, _, x1, _ := predictImplant(ctx, 1e-11, 1000) // √(2Dt) = 45 nm
	if !(x1 > x0) {
		t.Errorf("xj after diffusion %.4f µm, before %.4f µm: want deeper", x1, x0)
	}
	if _, _, _, _, err := predictImplant(ImplantContext{Species: "B", EnergyKeV: 500, DoseAtomsCm: 1e15}, 0, 1000); err == nil {
		t.Error("B at 500 keV: no error")
	}
	r := seedRecipe(t)
	r.Implant.EnergyKeV = 500 // past validation, as an old stored recipe could be
	e := &Engine{}
	*e = *mustEngine(t, seedRecipe(t), process.Options{Seed: 1})
	e.recipe = r
	run(t, e)
	res := e.Finish().Result.(*Result)
	if res.VMPrediction.JunctionDepthUm != nil || !strings.Contains(strings.Join(res.Warnings, "|"), "implant VM not predicted") {
		t.Errorf("out-of-table implant: xj %v, warnings %q", res.VMPrediction.JunctionDepthUm, res.Warnings)
	}
}
