package rtp

import (
	"math"
	"testing"
)

// Physics reference §5.1 and §7 vector 18: the exact relay oscillation of
// an FOPDT plant, a = K·d·(1 − e^{−θ/τ}), Pu = 2τ·ln(2e^{θ/τ} − 1).
func TestRelayFOPDT(t *testing.T) {
	tests := []struct {
		name          string
		k, tau, theta float64
		d             float64
		wantA, wantPu float64
		wantKu        float64
	}{
		{"K1_tau10_theta1", 1, 10, 1, 1, 0.09516, 3.818, 13.38},
		{"K1_tau1_theta1", 1, 1, 1, 1, 0.63212, 2.980, 2.014},
		{"K1_tau5_theta2", 1, 5, 2, 1, 0.32968, 6.849, 3.862},
		{"rtp_like", 10, 2.8, 0.2, 5, 3.447, 0.7733, 1.847},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const ts = 0.001
			p := newFOPDT(tt.k, tt.tau, tt.theta, ts)
			got, err := relayExperiment(p, 0, 0, tt.d, 0, ts, int(12*tt.wantPu/ts))
			if err != nil {
				t.Fatalf("relayExperiment: %v", err)
			}
			if rel(got.AmplitudeC, tt.wantA) > 0.01 {
				t.Errorf("amplitude = %.5f, want %.5f", got.AmplitudeC, tt.wantA)
			}
			if rel(got.Pu, tt.wantPu) > 0.01 {
				t.Errorf("Pu = %.4f, want %.4f", got.Pu, tt.wantPu)
			}
			if rel(got.Ku, tt.wantKu) > 0.01 {
				t.Errorf("Ku = %.4f, want %.4f", got.Ku, tt.wantKu)
			}
		})
	}
}

// Physics reference §5.2 numeric oracle and §7 vector 19.
func TestRuleGains(t *testing.T) {
	tests := []struct {
		rule       string
		kp, ti, td float64
	}{
		{"ziegler_nichols_pid", 5.882, 1.000, 0.250},
		{"tyreus_luyben_pid", 4.545, 4.444, 0.3175},
		{"no_overshoot", 2.0, 1.0, 0.667},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			r := ruleNamed(tt.rule)
			kp, ki, kd := r.Gains(10, 2)
			if rel(kp, tt.kp) > 1e-3 || rel(kp/ki, tt.ti) > 1e-3 || rel(kd/kp, tt.td) > 2e-3 {
				t.Errorf("Gains(10, 2) = Kp %.4f Ti %.4f Td %.4f, want %.4f %.4f %.4f", kp, kp/ki, kd/kp, tt.kp, tt.ti, tt.td)
			}
		})
	}
}

func ruleNamed(name string) Rule {
	for _, r := range Rules {
		if r.Name == name {
			return r
		}
	}
	panic("no rule " + name)
}

// stepFOPDT runs a unit set-point step on FOPDT(1, 10, 1) under a PID
// (derivative on the measurement, N = 10) and returns the response.
func stepFOPDT(kp, ki, kd, umin, umax float64, backCalc bool) StepResponse {
	const ts = 0.01
	p := newFOPDT(1, 10, 1, ts)
	c := NewPID(kp, ki, kd, ts)
	c.Scale, c.Min, c.Max, c.BackCalculation = 1, umin, umax, backCalc
	n := int(80 / ts)
	y := make([]float64, n)
	var yk float64
	for i := range n {
		u := c.Update(1, yk, 0, false)
		yk = p.step(u)
		y[i] = yk
	}
	return analyseStep(y, 1, 1, ts)
}

// Physics reference §5.2 closed-loop check and §7 vectors 20–21.
func TestPIDOnFOPDT(t *testing.T) {
	const ku, pu = 16.35, 3.850 // true ultimate gain and period of FOPDT(1, 10, 1)
	inf := math.Inf(1)
	tests := []struct {
		name          string
		rule          string
		umin, umax    float64
		backCalc      bool
		wantOvershoot float64 // %
		tolOvershoot  float64
		wantSettling  float64 // s, 0 = not checked
	}{
		{"ziegler_nichols", "ziegler_nichols_pid", -inf, inf, false, 61.5, 3, 10.1},
		{"tyreus_luyben", "tyreus_luyben_pid", -inf, inf, false, 6.2, 1.5, 16.8},
		{"pessen", "pessen_integral", -inf, inf, false, 87.0, 4, 0},
		{"zn_pi", "ziegler_nichols_pi", -inf, inf, false, 57.1, 3, 0},
		{"tl_pi", "tyreus_luyben_pi", -inf, inf, false, 7.5, 1.5, 0},
		{"zn_limited_no_antiwindup", "ziegler_nichols_pid", 0, 1.5, false, 41.7, 3, 41.5},
		{"zn_limited_back_calculation", "ziegler_nichols_pid", 0, 1.5, true, 3.4, 2, 14.7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, ki, kd := ruleNamed(tt.rule).Gains(ku, pu)
			noAW := !tt.backCalc && !math.IsInf(tt.umax, 0)
			var got StepResponse
			if noAW {
				got = stepFOPDTNoAntiWindup(kp, ki, kd, tt.umin, tt.umax)
			} else {
				got = stepFOPDT(kp, ki, kd, tt.umin, tt.umax, tt.backCalc)
			}
			if math.Abs(got.OvershootPct-tt.wantOvershoot) > tt.tolOvershoot {
				t.Errorf("overshoot = %.1f %%, want %.1f ± %.1f", got.OvershootPct, tt.wantOvershoot, tt.tolOvershoot)
			}
			if tt.wantSettling > 0 && rel(got.SettlingS, tt.wantSettling) > 0.1 {
				t.Errorf("settling = %.1f s, want %.1f ± 10 %%", got.SettlingS, tt.wantSettling)
			}
		})
	}
}

// stepFOPDTNoAntiWindup is stepFOPDT with a plain output clamp and an
// integral that keeps integrating (the reference's "without anti-windup").
func stepFOPDTNoAntiWindup(kp, ki, kd, umin, umax float64) StepResponse {
	const ts = 0.01
	p := newFOPDT(1, 10, 1, ts)
	c := NewPID(kp, ki, kd, ts)
	c.Scale, c.Min, c.Max = 1, math.Inf(-1), math.Inf(1)
	n := int(80 / ts)
	y := make([]float64, n)
	var yk float64
	for i := range n {
		u := min(max(c.Update(1, yk, 0, false), umin), umax)
		yk = p.step(u)
		y[i] = yk
	}
	return analyseStep(y, 1, 1, ts)
}

func rel(got, want float64) float64 { return math.Abs(got-want) / math.Abs(want) }
