package ion

import (
	"github.com/spectra-fab/spectra/process/ion/lss"
	"math"
	"testing"
)

// physics reference §1.5 and §7.5 test vectors for the SUPREM Pearson formulas.
func TestPearsonVectors(t *testing.T) {
	tests := []struct {
		name                   string
		rp, sigma, gamma, beta float64
		kind                   string
		mode, peakPerCm        float64
	}{
		{"B_40keV_gibbons", 132.6, 45.5, -0.611, 3.505, "VI/I", 147.0, 9.089e4},
		{"B_100keV_gibbons", 299.0, 71.4, -1.091, 4.894, "VI/I", 335.9, 6.430e4},
		{"P_40keV_gibbons", 53.4, 23.6, 0.401, 3.163, "VI/I", 48.4, 1.705e5},
		{"As_80keV_gibbons", 53.9, 19.2, 0.587, 3.459, "VI/I", 48.1, 2.146e5},
		{"B_40keV_beta4", 132.6, 45.5, -0.611, 4.0, PearsonIV, 143.7, 9.424e4},
		{"As_80keV_beta4", 53.9, 19.2, 0.587, 4.0, PearsonIV, 49.5, 2.235e5},
		{"near_gaussian", 100, 20, 0, 3.0001, PearsonIV, 100.0, 1.9947e5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPearson(tc.rp, tc.sigma, tc.gamma, tc.beta)
			if tc.kind == "VI/I" {
				if k := p.Kind(); k != PearsonVI && k != PearsonI {
					t.Errorf("Kind() = %s, want type VI or I", k)
				}
			} else if p.Kind() != tc.kind {
				t.Errorf("Kind() = %s, want %s", p.Kind(), tc.kind)
			}
			if math.Abs(p.Mode()-tc.mode) > 0.15 {
				t.Errorf("Mode() = %.2f nm, want %.1f", p.Mode(), tc.mode)
			}
			if got := p.Density(p.Mode()) * 1e7; relErr(got, tc.peakPerCm) > 2e-3 {
				t.Errorf("peak density = %.4g /cm, want %.4g", got, tc.peakPerCm)
			}
			// Moments recovered to 1e-3 (physics reference §7.5).
			var m [5]float64
			lo, hi := p.Rp-15*p.Sigma, p.Rp+15*p.Sigma
			const n = 20000
			h := (hi - lo) / n
			for i := 0; i <= n; i++ {
				x := lo + float64(i)*h
				w := h
				if i == 0 || i == n {
					w = h / 2
				}
				d := p.Density(x) * w
				for k := range m {
					m[k] += d * math.Pow(x, float64(k))
				}
			}
			mean := m[1] / m[0]
			v := m[2]/m[0] - mean*mean
			m3 := m[3]/m[0] - 3*mean*m[2]/m[0] + 2*mean*mean*mean
			m4 := m[4]/m[0] - 4*mean*m[3]/m[0] + 6*mean*mean*m[2]/m[0] - 3*mean*mean*mean*mean
			sd := math.Sqrt(v)
			if math.Abs(m[0]-1) > 1e-3 || relErr(mean, tc.rp) > 1e-3 || relErr(sd, tc.sigma) > 1e-3 ||
				math.Abs(m3/(v*sd)-tc.gamma) > 1e-3*math.Max(1, math.Abs(tc.gamma)) || relErr(m4/(v*v), tc.beta) > 1e-3 {
				t.Errorf("recovered ∫=%.5f Rp=%.3f σ=%.3f γ=%.4f β=%.4f, want 1, %v, %v, %v, %v",
					m[0], mean, sd, m3/(v*sd), m4/(v*v), tc.rp, tc.sigma, tc.gamma, tc.beta)
			}
		})
	}
}

// physics reference §1.5/§7.4: a Gaussian of 1e15 cm⁻² and ΔRp 23.6 nm peaks at
// 1.690e20 cm⁻³ and integrates to the dose.
func TestGaussianPeak(t *testing.T) {
	p := NewPearson(53.4, 23.6, 0, 3)
	if p.Kind() != PearsonGaussian {
		t.Fatalf("Kind() = %s, want gaussian", p.Kind())
	}
	if got := 1e15 * p.Density(53.4) * 1e7; relErr(got, 1.690e20) > 1e-3 {
		t.Errorf("Gaussian peak = %.4g cm⁻³, want 1.690e20", got)
	}
	if got := p.Fraction(-1e3, 1e3); math.Abs(got-1) > 1e-6 {
		t.Errorf("∫N dx / Q = %.8f, want 1 to 1e-6", got)
	}
}

// momentsOf builds moments for tests.
func momentsOf(rp, drp, gamma, beta float64) lss.Moments {
	return lss.Moments{RpNm: rp, DRpNm: drp, Gamma: gamma, Beta: beta}
}
