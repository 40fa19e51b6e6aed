package spc_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spectra-fab/spectra/process/spc"
)

// F quantiles against the printed tables (Montgomery, appendix V).
func TestFQuantile(t *testing.T) {
	for _, tc := range []struct{ q, d1, d2, want float64 }{
		{0.95, 2, 10, 4.10}, {0.95, 3, 30, 2.92}, {0.99, 5, 20, 4.10}, {0.99, 2, 100, 4.82}, {0.95, 1, 1e6, 3.84},
	} {
		if got := spc.FQuantile(tc.q, tc.d1, tc.d2); math.Abs(got-tc.want) > 0.01 {
			t.Errorf("F_%g(%g, %g) = %.4f, want %.2f", tc.q, tc.d1, tc.d2, got, tc.want)
		}
	}
}

// On correlated in-control data the Phase II limit holds its α; a shift
// against the correlation, 2σ on each variable in opposite directions,
// stays inside each univariate 3σ chart but not inside T².
func TestT2Library(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	draw := func() []float64 {
		a, b := rng.NormFloat64(), rng.NormFloat64()
		return []float64{a, 0.9*a + math.Sqrt(1-0.81)*b}
	}
	var good [][]float64
	for range 200 {
		good = append(good, draw())
	}
	lib, err := spc.NewT2Library(good, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	var out int
	const n = 5000
	for range n {
		if lib.T2(draw()) > lib.UCL {
			out++
		}
	}
	if f := float64(out) / n; f < 0.005 || f > 0.02 {
		t.Errorf("in-control fraction beyond the UCL = %.4f, want ≈ 0.01", f)
	}
	x := []float64{lib.Mean[0] + 2*lib.SD[0], lib.Mean[1] - 2*lib.SD[1]}
	for i, z := range lib.Z(x) {
		if math.Abs(z) >= 3 {
			t.Errorf("variable %d: |z| = %.2f, want inside 3σ", i, z)
		}
	}
	if t2 := lib.T2(x); t2 <= lib.UCL {
		t.Errorf("T² = %.1f, want beyond UCL %.1f", t2, lib.UCL)
	}
	if _, err := spc.NewT2Library([][]float64{{1, 2}, {1, 2}, {1, 2}, {1, 2}}, 0.01); err == nil {
		t.Error("constant variables: no error")
	}
	// A variable 0 in every run is refused whatever the others hold, even
	// when their deviations overflow (±Inf times its zero deviations
	// would be NaN, which no pivot test catches).
	if _, err := spc.NewT2Library([][]float64{{1.7e308, 0, 1}, {1.7e308, 0, 2}, {1.7e308, 0, 4}, {1.7e308, 0, 3}, {-1.7e308, 0, 5}}, 0.01); err == nil {
		t.Error("a variable 0 in every run: no error")
	}
}
