package rtp

import (
	"math"
	"testing"
)

// constantEmissivity is DefaultParams with ε = 0.68 at every temperature
// and no gas, the assumptions of the reference's §4.1 table.
func constantEmissivity() Params {
	p := DefaultParams
	p.EmissivityLow = p.EmissivityHigh
	p.HNatural, p.HPerSLM = 0, 0
	return p
}

// Physics reference §4.1 table and §7 vectors 15–16.
func TestThermalReference(t *testing.T) {
	p := constantEmissivity()
	if got := p.MassKg * 1000; rel(got, 127.6) > 1e-3 {
		t.Errorf("mass = %.2f g, want 127.6", got)
	}
	if rel(p.AreaM2, 0.07069) > 1e-3 {
		t.Errorf("area = %.5f m², want 0.07069", p.AreaM2)
	}
	tests := []struct {
		tempC                          float64
		cp, mcp, pradKW, g, tau, coolC float64
	}{
		{400, 877.2, 111.9, 1.08, 6.65, 16.8, 9.6},
		{600, 915.9, 116.9, 3.12, 14.5, 8.05, 26.7},
		{800, 948.9, 121.1, 7.19, 27.0, 4.49, 59.4},
		{1000, 979.7, 125.0, 14.28, 45.0, 2.78, 114.2},
		{1050, 987.2, 126.0, 16.66, 50.5, 2.49, 132.3},
		{1100, 994.7, 126.9, 19.34, 56.5, 2.25, 152.4},
		{1200, 1009.5, 128.8, 25.63, 69.7, 1.85, 199.0},
	}
	for _, tt := range tests {
		t.Run(num(tt.tempC), func(t *testing.T) {
			check := func(name string, got, want, tol float64) {
				t.Helper()
				if rel(got, want) > tol {
					t.Errorf("%s(%g °C) = %.4g, want %.4g (±%.1f %%)", name, tt.tempC, got, want, tol*100)
				}
			}
			check("HeatCapacity", HeatCapacity(tt.tempC), tt.cp, 1e-3)
			check("HeatCapacityJK", p.HeatCapacityJK(tt.tempC), tt.mcp, 2e-3)
			check("RadiatedW", p.RadiatedW(tt.tempC)/1000, tt.pradKW, 5e-3)
			check("ConductanceWK", p.ConductanceWK(tt.tempC, 0), tt.g, 5e-3)
			check("TimeConstantS", p.TimeConstantS(tt.tempC, 0), tt.tau, 1e-2)
			check("free cooling rate", p.RadiatedW(tt.tempC)/p.HeatCapacityJK(tt.tempC), tt.coolC, 5e-3)
		})
	}
	// §4.2: K = α/G at 1000 °C → 10 °C/kW = 10 °C per % of 100 kW.
	if got := p.GainCPerPct(1000, 0); rel(got, 10) > 0.01 {
		t.Errorf("GainCPerPct(1000) = %.3f °C/%%, want 10", got)
	}
}

// Steady-state lamp power: the simulator held at the lamp power that
// balances the reference's radiated power (§4.1, absorbed = α·P_lamp)
// settles at the reference temperature; and the default model (ε(T),
// N2 convection) needs that power within its small convective share at
// opaque temperatures.
func TestSteadyStateLampPower(t *testing.T) {
	tests := []struct {
		tempC, pradKW float64
	}{
		{800, 7.19}, {1000, 14.28}, {1050, 16.66}, {1100, 19.34}, {1200, 25.63},
	}
	for _, tt := range tests {
		t.Run(num(tt.tempC), func(t *testing.T) {
			p := constantEmissivity()
			want := tt.pradKW * 1000 / (p.Absorptivity * p.MaxLampPowerW) * 100 // %
			if got := p.SteadyLampPct(tt.tempC, 0); rel(got, want) > 5e-3 {
				t.Errorf("SteadyLampPct(%g) = %.3f %%, want %.3f", tt.tempC, got, want)
			}
			w := Wafer{P: p, TempC: tt.tempC - 100}
			for range 600 { // 60 s
				w.Advance(0.1, want, 1)
			}
			if math.Abs(w.TempC-tt.tempC) > 1.5 {
				t.Errorf("wafer at %.3f %% lamp settles at %.2f °C, want %g ± 1.5", want, w.TempC, tt.tempC)
			}
			d := DefaultParams
			if got := d.SteadyLampPct(tt.tempC, DefaultN2SLM); rel(got, want) > 0.04 || got < want {
				t.Errorf("default model SteadyLampPct(%g, 10 slm) = %.3f %%, want %.3f + ≤ 4 %% convection", tt.tempC, got, want)
			}
		})
	}
}

// Physics reference §4.1 open-loop sanity: 150 kW × 50 % coupling,
// τ_L = 0.2 s → 579 °C at 1 s, 1112 °C at 2 s, steady state 1653 °C.
func TestOpenLoopSanity(t *testing.T) {
	p := constantEmissivity()
	p.MaxLampPowerW, p.Absorptivity = 150e3, 0.5
	w := Wafer{P: p, TempC: 25}
	at := map[int]float64{10: 579, 20: 1112}
	for k := 1; k <= 20; k++ {
		w.Advance(0.1, 100, 1)
		if want, ok := at[k]; ok && math.Abs(w.TempC-want) > 0.02*want {
			t.Errorf("T(%.1f s) = %.1f °C, want %g ± 2 %%", float64(k)/10, w.TempC, want)
		}
	}
	// Steady state: P·α = 2Aεσ(T⁴ − T_w⁴).
	tk := math.Pow(75e3/(2*p.AreaM2*0.68*StefanBoltzmann)+math.Pow(300, 4), 0.25) - zeroC
	if math.Abs(tk-1653) > 2 {
		t.Errorf("steady state = %.1f °C, want 1653", tk)
	}
}

// Physics reference §7 vector 17: lamps off, the wafer cools monotonically;
// constant power, it settles where absorbed power equals the loss.
func TestEnergyConservation(t *testing.T) {
	p := DefaultParams
	w := Wafer{P: p, TempC: 1100, FlowSLM: 10}
	prev := w.TempC
	for range 1200 {
		w.Advance(0.1, 0, 1)
		if w.TempC >= prev {
			t.Fatalf("lamps off: T rose from %.4f to %.4f °C", prev, w.TempC)
		}
		prev = w.TempC
	}
	w = Wafer{P: p, TempC: 600, FlowSLM: 10}
	for range 1200 {
		w.Advance(0.1, 30, 1)
	}
	absorbed := p.absorptivity(w.TempC) * w.LampW
	if loss := p.LossW(w.TempC, 10); rel(absorbed, loss) > 1e-4 {
		t.Errorf("at rest: absorbed %.1f W, lost %.1f W", absorbed, loss)
	}
}

func TestPyrometerNoise(t *testing.T) {
	if got := NoiseC(1000); got != 0.3 {
		t.Errorf("NoiseC(1000) = %g, want 0.3", got)
	}
	if got := NoiseC(25); math.Abs(got-1.5) > 1e-9 {
		t.Errorf("NoiseC(25) = %g, want 1.5", got)
	}
}
