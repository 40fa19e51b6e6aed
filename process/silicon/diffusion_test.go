package silicon_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/spectra-fab/spectra/process/silicon"
)

func TestDiffusivity(t *testing.T) {
	// Physics reference §3.1, "Evaluated [C]" table, columns (b) (Plummer,
	// Deal & Griffin 2000) and (a) (Fair, SUPREM-IV.GS, intrinsic), three
	// significant digits.
	temps := []float64{800, 900, 1000, 1050, 1100, 1200}
	plummer := map[string][]float64{
		"B":  {3.66e-17, 9.21e-16, 1.40e-14, 4.66e-14, 1.43e-13, 1.06e-12},
		"In": {4.39e-17, 1.11e-15, 1.68e-14, 5.60e-14, 1.71e-13, 1.27e-12},
		"As": {1.68e-18, 6.63e-17, 1.47e-15, 5.82e-15, 2.08e-14, 2.05e-13},
		"Sb": {2.75e-18, 9.83e-17, 2.00e-15, 7.62e-15, 2.63e-14, 2.44e-13},
		"P":  {2.45e-17, 7.30e-16, 1.27e-14, 4.52e-14, 1.46e-13, 1.21e-12},
	}
	fair := map[string][]float64{
		"B":  {4.49e-17, 1.09e-15, 1.60e-14, 5.28e-14, 1.59e-13, 1.16e-12},
		"As": {5.88e-18, 1.62e-16, 2.80e-15, 1.01e-14, 3.33e-14, 2.92e-13},
		"Sb": {2.58e-18, 8.92e-17, 1.82e-15, 7.00e-15, 2.45e-14, 2.35e-13},
		"P":  {2.58e-17, 7.65e-16, 1.34e-14, 4.77e-14, 1.55e-13, 1.30e-12},
	}
	ni := []float64{1.98e18, 3.95e18, 7.14e18, 9.31e18, 1.19e19, 1.88e19}
	for i, temp := range temps {
		t.Run(fmt.Sprintf("%gC", temp), func(t *testing.T) {
			for species, want := range plummer {
				if got, tol := silicon.Diffusivity(species, temp), digit(want[i], 3); !within(got, want[i], tol) {
					t.Errorf("Diffusivity(%s, %g) = %g, want %g ± %g", species, temp, got, want[i], tol)
				}
			}
			for species, want := range fair {
				if got, tol := silicon.FairDiffusivity(species, temp, 0), digit(want[i], 3); !within(got, want[i], tol) {
					t.Errorf("FairDiffusivity(%s, %g, intrinsic) = %g, want %g ± %g", species, temp, got, want[i], tol)
				}
			}
			if got, tol := silicon.IntrinsicCarriers(temp), digit(ni[i], 3); !within(got, ni[i], tol) {
				t.Errorf("IntrinsicCarriers(%g) = %g, want %g ± %g", temp, got, ni[i], tol)
			}
			if b, bf2 := silicon.Diffusivity("B", temp), silicon.Diffusivity("BF2", temp); b != bf2 {
				t.Errorf("Diffusivity(BF2, %g) = %g, want Diffusivity(B) = %g", temp, bf2, b)
			}
		})
	}
	if got := silicon.Diffusivity("Ge", 1000); got != 0 {
		t.Errorf("Diffusivity(Ge, 1000) = %g, want 0", got)
	}
}

func TestFairDiffusivityExtrinsic(t *testing.T) {
	// Doping of the diffusing type raises D through the charged terms:
	// D(B, p = 10 ni) = D⁰ + 10 D⁺ (n = ni/10).
	ni := silicon.IntrinsicCarriers(1000)
	neutral := silicon.Arrhenius{D0: 0.037, Ea: 3.46}.At(1000)
	plus := silicon.Arrhenius{D0: 0.76, Ea: 3.46}.At(1000)
	want := neutral + 10*plus
	if got := silicon.FairDiffusivity("B", 1000, ni/10); !within(got, want, 1e-9*want) {
		t.Errorf("FairDiffusivity(B, 1000, ni/10) = %g, want %g", got, want)
	}
}

func TestDiffusivityIncreasesWithTemperature(t *testing.T) {
	for _, species := range silicon.Dopants {
		t.Run(species, func(t *testing.T) {
			prev := silicon.Diffusivity(species, 400)
			for temp := 401.0; temp <= 1300; temp++ {
				got := silicon.Diffusivity(species, temp)
				if !(got > prev) {
					t.Fatalf("Diffusivity(%s, %g) = %g, want > %g at %g °C", species, temp, got, prev, temp-1)
				}
				prev = got
			}
		})
	}
}

func TestThermalBudget(t *testing.T) {
	// Physics reference §3.2 test vectors and §7 vector 13: B (1.0, 3.5 eV),
	// spikes from 600 °C with zero hold. Dt and t_eff printed to 4 and 3
	// digits, √(2Dt) to 3.
	spike := func(peak, up, down float64) ([]float64, []float64) {
		tu, td := (peak-600)/up, (peak-600)/down
		return []float64{0, tu, tu + td}, []float64{600, peak, 600}
	}
	tests := []struct {
		name        string
		times, temp []float64
		peak        float64
		dt, teff    float64
		sigmaNm     float64
	}{
		{name: "1050C_150_75", peak: 1050, dt: 3.782e-14, teff: 0.811, sigmaNm: 2.75},
		{name: "1050C_250_90", peak: 1050, dt: 2.857e-14, teff: 0.613, sigmaNm: 2.39},
		{name: "1000C_100_50", peak: 1000, dt: 1.577e-14, teff: 1.128, sigmaNm: 1.78},
		{name: "1100C_150_75", peak: 1100, dt: 1.243e-13, teff: 0.871, sigmaNm: 4.99},
		{name: "soak_1000C_10s", peak: 1000, dt: 1.607e-13, teff: 11.50, sigmaNm: 5.67,
			times: []float64{0, 8, 18, 26}, temp: []float64{600, 1000, 1000, 600}},
	}
	ramps := map[string][2]float64{
		"1050C_150_75": {150, 75}, "1050C_250_90": {250, 90}, "1000C_100_50": {100, 50}, "1100C_150_75": {150, 75},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			times, temps := tt.times, tt.temp
			if times == nil {
				r := ramps[tt.name]
				times, temps = spike(tt.peak, r[0], r[1])
			}
			dt := silicon.ThermalBudget("B", times, temps)
			if tol := digit(tt.dt, 4); !within(dt, tt.dt, tol) {
				t.Errorf("ThermalBudget(B, %v, %v) = %g cm², want %g ± %g", times, temps, dt, tt.dt, tol)
			}
			sigfig := 3
			if tt.teff >= 1 {
				sigfig = 4
			}
			if got, tol := silicon.EffectiveTime("B", dt, tt.peak), digit(tt.teff, sigfig); !within(got, tt.teff, tol) {
				t.Errorf("EffectiveTime(B, %g, %g) = %g s, want %g ± %g", dt, tt.peak, got, tt.teff, tol)
			}
			if got, tol := silicon.BroadeningNm(dt), digit(tt.sigmaNm, 3); !within(got, tt.sigmaNm, tol) {
				t.Errorf("BroadeningNm(%g) = %g nm, want %g ± %g", dt, got, tt.sigmaNm, tol)
			}
		})
	}
}

func TestThermalBudgetDenseTraceAgrees(t *testing.T) {
	// A trace sampled every 100 ms (as the RTP engine produces it) gives the
	// same budget as its corner points.
	var times, temps []float64
	for i := 0; i <= 90; i++ {
		ts := float64(i) / 10
		temp := 600 + 150*ts
		if ts > 3 {
			temp = 1050 - 75*(ts-3)
		}
		times, temps = append(times, ts), append(temps, temp)
	}
	dense := silicon.ThermalBudget("B", times, temps)
	corners := silicon.ThermalBudget("B", []float64{0, 3, 9}, []float64{600, 1050, 600})
	if !within(dense, corners, 1e-5*corners) {
		t.Errorf("ThermalBudget(B, 100 ms trace) = %g, want %g (corner points) ± 1e-5", dense, corners)
	}
}

func TestIsothermalBroadening(t *testing.T) {
	// Physics reference §3.2: √(2Dt) for isothermal anneals, Plummer D.
	tests := []struct {
		species     string
		temp, time  float64
		want        float64 // nm
		significant int
	}{
		{"B", 1000, 10, 5.3, 2},
		{"B", 1050, 10, 9.7, 2},
		{"B", 1000, 1800, 71, 2},
		{"B", 1100, 3600, 320, 2},
		{"As", 1000, 10, 1.7, 2},
		{"Sb", 1000, 10, 2.0, 2},
		{"P", 1000, 10, 5.1, 2}, // the reference's own D (1.27e-14) gives 5.04
		{"In", 1000, 10, 5.8, 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s_%gC_%gs", tt.species, tt.temp, tt.time), func(t *testing.T) {
			dt := silicon.ThermalBudget(tt.species, []float64{0, tt.time}, []float64{tt.temp, tt.temp})
			if got, tol := silicon.BroadeningNm(dt), digit(tt.want, tt.significant); !within(got, tt.want, tol) {
				t.Errorf("BroadeningNm(ThermalBudget(%s, %g °C, %g s)) = %g nm, want %g ± %g", tt.species, tt.temp, tt.time, got, tt.want, tol)
			}
		})
	}
}

func TestDiffusionLength(t *testing.T) {
	// 2√(Dt) in µm: Dt = 1e-10 cm² → 2e-5 cm = 0.2 µm; √2 × BroadeningNm.
	if got := silicon.DiffusionLength(1e-10); !within(got, 0.2, 1e-12) {
		t.Errorf("DiffusionLength(1e-10) = %g µm, want 0.2", got)
	}
	dt := 3.782e-14
	if got, want := silicon.DiffusionLength(dt)*1000, math.Sqrt2*silicon.BroadeningNm(dt); !within(got, want, 1e-9*want) {
		t.Errorf("DiffusionLength(%g) = %g nm, want √2·BroadeningNm = %g", dt, got, want)
	}
	if got := silicon.BroadenedSigmaNm(3, 0); got != 3 {
		t.Errorf("BroadenedSigmaNm(3, 0) = %g, want 3", got)
	}
}

func TestOxideRates(t *testing.T) {
	// Physics reference §3.3 "Rate constants [C]", (100).
	tests := []struct {
		temp         float64
		a, b, bOverA float64
	}{
		{1000, 0.2325, 1.044e-2, 4.489e-2},
		{900, 0.423, 4.01e-3, 9.49e-3},
		{1100, 0.140, 2.36e-2, 0.169},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%gC", tt.temp), func(t *testing.T) {
			a, b := silicon.OxideRates(silicon.Si100, tt.temp)
			sig := 3
			if tt.temp == 1000 {
				sig = 4
			}
			if tol := digit(tt.a, sig); !within(a, tt.a, tol) {
				t.Errorf("OxideRates((100), %g) A = %g µm, want %g ± %g", tt.temp, a, tt.a, tol)
			}
			if tol := digit(tt.b, sig); !within(b, tt.b, tol) {
				t.Errorf("OxideRates((100), %g) B = %g µm²/h, want %g ± %g", tt.temp, b, tt.b, tol)
			}
			if tol := digit(tt.bOverA, sig); !within(b/a, tt.bOverA, tol) {
				t.Errorf("OxideRates((100), %g) B/A = %g µm/h, want %g ± %g", tt.temp, b/a, tt.bOverA, tol)
			}
		})
	}
}

func TestOxideThickness(t *testing.T) {
	// Physics reference §3.3 "Reference thicknesses [C]" and §7 vector 14,
	// dry O2 from bare Si; printed to 3 significant digits (2 below 1 nm).
	tests := []struct {
		name       string
		o          silicon.Orientation
		temp, time float64
		dg, dg25   float64 // pure D-G, D-G with τ(x_i = 25 nm)
		thin       float64 // SUPREM-IV thin-oxide model; 0: not given
	}{
		{"1000C_30s_100", silicon.Si100, 1000, 30, 0.37, 25.3, 1.59},
		{"1000C_60s_100", silicon.Si100, 1000, 60, 0.75, 25.6, 2.93},
		{"1000C_1h_100", silicon.Si100, 1000, 3600, 38.5, 58.1, 47.4},
		{"1000C_1h_111", silicon.Si111, 1000, 3600, 54.2, 69.8, 0},
		{"1100C_1h_100", silicon.Si100, 1100, 3600, 99.0, 110.8, 105.2},
	}
	sig := func(v float64) int {
		switch {
		case v < 1:
			return 2
		case v >= 100:
			return 4
		}
		return 3
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, tol := silicon.DealGroveOn(tt.o, tt.temp, tt.time, 0), digit(tt.dg, sig(tt.dg)); !within(got, tt.dg, tol) {
				t.Errorf("DealGroveOn(%v, %g, %g, 0) = %g nm, want %g ± %g", tt.o, tt.temp, tt.time, got, tt.dg, tol)
			}
			if got, tol := silicon.DealGroveOn(tt.o, tt.temp, tt.time, 25), digit(tt.dg25, sig(tt.dg25)); !within(got, tt.dg25, tol) {
				t.Errorf("DealGroveOn(%v, %g, %g, 25) = %g nm, want %g ± %g", tt.o, tt.temp, tt.time, got, tt.dg25, tol)
			}
			if tt.thin == 0 {
				return
			}
			if got, tol := silicon.ThinOxide(tt.o, tt.temp, tt.time, 0), digit(tt.thin, sig(tt.thin)); !within(got, tt.thin, tol) {
				t.Errorf("ThinOxide(%v, %g, %g, 0) = %g nm, want %g ± %g", tt.o, tt.temp, tt.time, got, tt.thin, tol)
			}
		})
	}
	if got, want := silicon.DealGrove(1000, 3600, 0), silicon.DealGroveOn(silicon.Si100, 1000, 3600, 0); got != want {
		t.Errorf("DealGrove(1000, 3600, 0) = %g, want the (100) value %g", got, want)
	}
}

func TestOxideLiteratureBracket(t *testing.T) {
	// Physics reference §3.3 [K]: "1000 °C dry, 1 h ≈ 40–60 nm on (100)";
	// the thin-oxide model (the one for RTP) falls inside.
	if got := silicon.ThinOxide(silicon.Si100, 1000, 3600, 0); got < 40 || got > 60 {
		t.Errorf("ThinOxide((100), 1000, 1 h, 0) = %g nm, want in [40, 60]", got)
	}
}

func TestOxideGrows(t *testing.T) {
	models := []struct {
		name string
		f    func(temp, time, xi float64) float64
	}{
		{"DealGrove", silicon.DealGrove},
		{"ThinOxide", func(temp, time, xi float64) float64 { return silicon.ThinOxide(silicon.Si100, temp, time, xi) }},
	}
	for _, m := range models {
		t.Run(m.name+"/time", func(t *testing.T) {
			for _, temp := range []float64{800, 1000, 1150} {
				prev := m.f(temp, 0, silicon.NativeOxideNm())
				if prev != silicon.NativeOxideNm() {
					t.Errorf("%s(%g, 0, %g) = %g, want the initial thickness", m.name, temp, silicon.NativeOxideNm(), prev)
				}
				for _, ts := range []float64{1, 5, 30, 120, 600, 3600, 7200} {
					got := m.f(temp, ts, silicon.NativeOxideNm())
					if !(got > prev) {
						t.Errorf("%s(%g, %g, native) = %g nm, want > %g at the shorter time", m.name, temp, ts, got, prev)
					}
					prev = got
				}
			}
		})
		t.Run(m.name+"/temperature", func(t *testing.T) {
			prev := m.f(700, 60, 0)
			for temp := 725.0; temp <= 1200; temp += 25 {
				got := m.f(temp, 60, 0)
				if !(got > prev) {
					t.Errorf("%s(%g, 60, 0) = %g nm, want > %g at %g °C", m.name, temp, got, prev, temp-25)
				}
				prev = got
			}
		})
	}
}

func TestDealGroveComposes(t *testing.T) {
	// τ makes growth history-free: t1 then t2 equals t1 + t2.
	for _, temp := range []float64{900, 1000, 1100} {
		x1 := silicon.DealGrove(temp, 1200, 0)
		got := silicon.DealGrove(temp, 2400, x1)
		want := silicon.DealGrove(temp, 3600, 0)
		if !within(got, want, 1e-9*want) {
			t.Errorf("DealGrove(%g, 2400, DealGrove(%g, 1200, 0)) = %g nm, want DealGrove(%g, 3600, 0) = %g", temp, temp, got, temp, want)
		}
	}
	// The RK4 thin-oxide integration composes to its step error.
	x1 := silicon.ThinOxide(silicon.Si100, 1000, 20, 0)
	got := silicon.ThinOxide(silicon.Si100, 1000, 40, x1)
	want := silicon.ThinOxide(silicon.Si100, 1000, 60, 0)
	if !within(got, want, 1e-7*want) {
		t.Errorf("ThinOxide(1000, 40, ThinOxide(1000, 20, 0)) = %g nm, want ThinOxide(1000, 60, 0) = %g", got, want)
	}
}

func TestActivation(t *testing.T) {
	// Physics reference §2.4, rough [S:14]/[K]; tolerances are loose by design.
	tests := []struct {
		name       string
		species    string
		temp, time float64
		lo, hi     float64 // %
	}{
		{"B_800C_short_about_25pct", "B", 800, 10, 10, 40},
		{"BF2_like_B", "BF2", 800, 10, 10, 40},
		{"B_1050C_spike_mostly_active", "B", 1050, 1, 85, 100},
		{"As_SPE_650C_regrown", "As", 650, 30, 80, 100},
		{"P_550C_partly_regrown", "P", 550, 30, 5, 60},
		{"B_500C_inactive", "B", 500, 10, 0, 5},
		{"no_anneal", "As", 1000, 0, 0, 0},
		{"unknown_species", "Ge", 1000, 10, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := silicon.Activation(tt.species, tt.temp, tt.time); got < tt.lo || got > tt.hi {
				t.Errorf("Activation(%s, %g, %g) = %g %%, want in [%g, %g]", tt.species, tt.temp, tt.time, got, tt.lo, tt.hi)
			}
		})
	}
	t.Run("monotonic", func(t *testing.T) {
		for _, species := range silicon.Dopants {
			prev := 0.0
			for temp := 400.0; temp <= 1200; temp += 10 {
				got := silicon.Activation(species, temp, 10)
				if got < prev || got > 100 {
					t.Fatalf("Activation(%s, %g, 10) = %g, want in [%g, 100]", species, temp, got, prev)
				}
				prev = got
			}
			if short, long := silicon.Activation(species, 800, 1), silicon.Activation(species, 800, 100); !(long > short) {
				t.Errorf("Activation(%s, 800, 100) = %g, want > Activation(%s, 800, 1) = %g", species, long, species, short)
			}
		}
	})
}
