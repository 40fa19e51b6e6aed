package spc_test

import (
	"math"
	"testing"

	"github.com/spectra-fab/spectra/process/spc"
)

func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestIndividualsLimits(t *testing.T) {
	tests := []struct {
		name     string
		baseline []float64
		want     spc.Limits
	}{
		{
			// MR̄ = (2+1+2+4)/4 = 2.25, σ̂ = 2.25/1.128.
			name:     "five_points",
			baseline: []float64{10, 12, 11, 13, 9},
			want:     spc.Limits{Center: 11, Sigma: 2.25 / 1.128, UCL: 11 + 3*2.25/1.128, LCL: 11 - 3*2.25/1.128},
		},
		{name: "constant", baseline: []float64{5, 5, 5}, want: spc.Limits{Center: 5, UCL: 5, LCL: 5}},
		{name: "one_point", baseline: []float64{7}, want: spc.Limits{Center: 7, UCL: 7, LCL: 7}},
		{name: "empty", want: spc.Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := spc.IndividualsLimits(tt.baseline)
			if !within(got.Center, tt.want.Center, 1e-12) || !within(got.Sigma, tt.want.Sigma, 1e-12) ||
				!within(got.UCL, tt.want.UCL, 1e-12) || !within(got.LCL, tt.want.LCL, 1e-12) {
				t.Errorf("IndividualsLimits(%v) = %+v, want %+v", tt.baseline, got, tt.want)
			}
		})
	}
}

func TestXbarLimits(t *testing.T) {
	// Subgroups of 5: limits X̄̄ ± A2·R̄ with A2(5) = 0.577 (Montgomery,
	// appendix VI), Sigma = R̄/(d2·√n).
	groups := [][]float64{
		{1, 2, 3, 4, 5}, // mean 3, range 4
		{2, 3, 4, 5, 8}, // mean 4.4, range 6
		{0, 1, 2, 2, 0}, // mean 1, range 2
		{1, 2},          // wrong size: skipped
	}
	got := spc.XbarLimits(groups)
	center, rbar := (3+4.4+1)/3.0, 4.0
	if !within(got.Center, center, 1e-12) {
		t.Errorf("XbarLimits(…).Center = %g, want %g", got.Center, center)
	}
	if want := center + 0.577*rbar; !within(got.UCL, want, 0.0005*rbar) {
		t.Errorf("XbarLimits(…).UCL = %g, want X̄̄ + A2·R̄ = %g ± 0.0005·R̄", got.UCL, want)
	}
	if want := rbar / (2.326 * math.Sqrt(5)); !within(got.Sigma, want, 1e-12) {
		t.Errorf("XbarLimits(…).Sigma = %g, want %g", got.Sigma, want)
	}
	if z := spc.XbarLimits([][]float64{{1}}); z != (spc.Limits{}) {
		t.Errorf("XbarLimits(subgroups of 1) = %+v, want zero Limits", z)
	}
}

func TestNewLimits(t *testing.T) {
	got := spc.NewLimits(100, 2)
	if want := (spc.Limits{Center: 100, UCL: 106, LCL: 94, Sigma: 2}); got != want {
		t.Errorf("NewLimits(100, 2) = %+v, want %+v", got, want)
	}
}
