package r2r_test

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/spectra-fab/spectra/process/r2r"
)

func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// controller is what the closed-loop simulation needs of both controllers.
type controller[C any] interface {
	Recommend() float64
	Update(measured float64) C
}

// simulate runs the process y_t = α_t + β·u_t (no noise) under controller c
// for runs runs and returns the errors y_t − target.
func simulate[C controller[C]](c C, target, beta float64, alpha func(t int) float64, runs int) []float64 {
	errs := make([]float64, runs)
	for t := range runs {
		y := alpha(t) + beta*c.Recommend()
		errs[t] = y - target
		c = c.Update(y)
	}
	return errs
}

func TestEWMAStep(t *testing.T) {
	// Physics reference §5.5 and §7 vector 22: λ = 0.3, matched gain, unit
	// step disturbance: errors 1, 0.7, 0.49, 0.343, 0.2401 = (1 − λ)^k.
	errs := simulate(r2r.NewEWMA(0.3, 0), 0, 1, func(int) float64 { return 1 }, 5)
	for i, want := range []float64{1, 0.7, 0.49, 0.343, 0.2401} {
		if !within(errs[i], want, 1e-12) {
			t.Errorf("EWMA(λ 0.3) error at run %d = %g, want %g", i, errs[i], want)
		}
	}
}

func TestEWMADriftOffset(t *testing.T) {
	// Physics reference §5.5: a drift δ = 0.1 per run leaves a steady
	// offset δ/(λξ), ξ = β/b (printed to 3 digits; the simulation must also
	// meet the closed form to 1e-9 after 600 runs).
	tests := []struct {
		lambda, xi float64
		want       float64
	}{
		{0.2, 1, 0.500},
		{0.3, 1, 0.333},
		{0.4, 1, 0.250},
		{0.3, 0.5, 0.667},
		{0.3, 1.5, 0.222},
		{0.3, 2.0, 0.167},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("lambda%g_xi%g", tt.lambda, tt.xi), func(t *testing.T) {
			c := r2r.NewEWMA(tt.lambda, 5)
			errs := simulate(c, 5, tt.xi, func(t int) float64 { return 0.1 * float64(t) }, 600)
			got := errs[len(errs)-1]
			if !within(got, tt.want, 0.001) {
				t.Errorf("EWMA(λ %g, ξ %g) steady offset under 0.1/run drift = %g, want %g ± 0.001", tt.lambda, tt.xi, got, tt.want)
			}
			if exact := 0.1 / (tt.lambda * tt.xi); !within(got, exact, 1e-9) {
				t.Errorf("EWMA(λ %g, ξ %g) steady offset = %.12g, want δ/(λξ) = %.12g ± 1e-9", tt.lambda, tt.xi, got, exact)
			}
		})
	}
}

func TestEWMAStability(t *testing.T) {
	// Physics reference §5.5: stable for 0 < λξ < 2; λξ = 1.95 still
	// converges (oscillating), 2.05 diverges. λ = 0.5, ξ = 3.9 and 4.1.
	tests := []struct {
		name     string
		xi       float64
		converge bool
	}{
		{"lambda_xi_1.95", 3.9, true},
		{"lambda_xi_2.05", 4.1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := simulate(r2r.NewEWMA(0.5, 0), 0, tt.xi, func(int) float64 { return 1 }, 400)
			last := math.Abs(errs[len(errs)-1])
			if tt.converge && last > 1e-6 {
				t.Errorf("EWMA(λξ %g) |error| after 400 runs = %g, want < 1e-6", 0.5*tt.xi, last)
			}
			if !tt.converge && last < 1e6 {
				t.Errorf("EWMA(λξ %g) |error| after 400 runs = %g, want divergence (> 1e6)", 0.5*tt.xi, last)
			}
			if errs[1]*errs[2] >= 0 {
				t.Errorf("EWMA(λξ %g) errors %g, %g, want oscillation (alternating sign)", 0.5*tt.xi, errs[1], errs[2])
			}
		})
	}
}

func TestDoubleEWMARemovesDrift(t *testing.T) {
	// Physics reference §5.5 and §7 vector 23: dEWMA (0.3, 0.1) leaves no
	// offset under a linear drift (< 1e-10 after 600 runs), where the single
	// EWMA(0.3) keeps 0.333.
	for _, beta := range []float64{1, 0.8, 1.3} {
		t.Run(fmt.Sprintf("xi%g", beta), func(t *testing.T) {
			errs := simulate(r2r.NewDoubleEWMA(0.3, 0.1, 2), 2, beta, func(t int) float64 { return 1 + 0.1*float64(t) }, 600)
			if got := errs[len(errs)-1]; math.Abs(got) > 1e-10 {
				t.Errorf("DoubleEWMA(0.3, 0.1, ξ %g) error after 600 runs = %g, want |·| < 1e-10", beta, got)
			}
		})
	}
}

func TestDoubleEWMAStep(t *testing.T) {
	// On a step with λ2 = 0 the double EWMA is the single EWMA.
	single := simulate(r2r.NewEWMA(0.3, 0), 0, 1, func(int) float64 { return 1 }, 20)
	double := simulate(r2r.NewDoubleEWMA(0.3, 0, 0), 0, 1, func(int) float64 { return 1 }, 20)
	for i := range single {
		if !within(double[i], single[i], 1e-12) {
			t.Errorf("DoubleEWMA(0.3, 0) error at run %d = %g, want EWMA's %g", i, double[i], single[i])
		}
	}
}

func TestEWMAValueSemantics(t *testing.T) {
	e := r2r.NewEWMA(0.3, 10)
	before := e
	next := e.Update(12)
	if e != before {
		t.Errorf("Update changed its receiver: %+v, want %+v", e, before)
	}
	if next.N != 1 || !within(next.Offset, 0.3*(12-10), 1e-12) {
		t.Errorf("NewEWMA(0.3, 10).Update(12) = %+v, want N 1, Offset 0.6", next)
	}
	if got := next.Recommend(); !within(got, 10-0.6, 1e-12) {
		t.Errorf("Recommend() = %g, want %g", got, 9.4)
	}
}

func TestEWMAUpdateApplied(t *testing.T) {
	// The run ran at u = 2 instead of the recommendation: the offset learns
	// y − b·u.
	e := r2r.EWMA{Lambda: 0.5, Target: 0, Gain: 2}
	got := e.UpdateApplied(5, 2)
	if want := 0.5 * (5 - 2*2); !within(got.Offset, want, 1e-12) {
		t.Errorf("UpdateApplied(5, 2).Offset = %g, want %g", got.Offset, want)
	}
	if want := (0 - 0.5) / 2; !within(got.Recommend(), want, 1e-12) {
		t.Errorf("Recommend() with gain 2 = %g, want %g", got.Recommend(), want)
	}
	if zero := (r2r.EWMA{Lambda: 0.5, Target: 3}); zero.Recommend() != 3 {
		t.Errorf("EWMA{Gain: 0}.Recommend() = %g, want 3 (zero gain means 1)", zero.Recommend())
	}
}

func TestEWMAClampAndWeight(t *testing.T) {
	e := r2r.NewEWMA(0.5, 0)
	e.Min, e.Max = -0.2, 0.2
	e = e.Update(1) // offset 0.5 → unclamped u = −0.5
	if got := e.Recommend(); got != -0.2 {
		t.Errorf("Recommend() clamped to [−0.2, 0.2] = %g, want −0.2", got)
	}
	e = e.Update(0.8) // ran at −0.2: y − u = 1.0 → offset 0.75
	if !within(e.Offset, 0.75, 1e-12) {
		t.Errorf("Offset after a clamped run = %g, want 0.75 (learns from the applied u)", e.Offset)
	}

	w := r2r.NewEWMA(0.4, 0)
	if got := w.UpdateWeighted(1, 0); got.Offset != 0 || got.N != 1 || got.Lambda != 0.4 {
		t.Errorf("UpdateWeighted(1, reliance 0) = %+v, want Offset 0, N 1, Lambda 0.4", got)
	}
	if got, want := w.UpdateWeighted(1, 1), w.Update(1); got != want {
		t.Errorf("UpdateWeighted(1, reliance 1) = %+v, want Update(1) = %+v", got, want)
	}
	if got := w.UpdateWeighted(1, 0.5); !within(got.Offset, 0.2, 1e-12) {
		t.Errorf("UpdateWeighted(1, reliance 0.5).Offset = %g, want 0.2", got.Offset)
	}
	if got := w.Update(1).Reset(); got.Offset != 0 || got.N != 0 || got.Recommend() != 0 {
		t.Errorf("Reset() = %+v, want no offset", got)
	}
}

func TestEWMAJSONRoundTrip(t *testing.T) {
	// A projection stores controller state as JSON and must get it back.
	e := r2r.NewEWMA(0.3, 1.5).Update(2).Update(1.7)
	d := r2r.NewDoubleEWMA(0.3, 0.1, 1.5).Update(2).Update(1.7)
	for _, v := range []any{e, d} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%+v): %v", v, err)
		}
		switch v := v.(type) {
		case r2r.EWMA:
			var got r2r.EWMA
			if err := json.Unmarshal(b, &got); err != nil || got != v {
				t.Errorf("json round trip of %+v = %+v, %v", v, got, err)
			}
		case r2r.DoubleEWMA:
			var got r2r.DoubleEWMA
			if err := json.Unmarshal(b, &got); err != nil || got != v {
				t.Errorf("json round trip of %+v = %+v, %v", v, got, err)
			}
		}
	}
}
