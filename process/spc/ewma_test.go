package spc_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/spc"
)

func TestEWMAChartLimits(t *testing.T) {
	// σ_z = σ√(λ/(2−λ)·[1 − (1−λ)^{2i}]): at i = 1 it is λσ.
	c := spc.NewEWMAChart(10, 2, 0.2, 3)
	c.Add(10)
	if got := c.Limits(); !within(got.Sigma, 0.2*2, 1e-12) || !within(got.UCL, 10+3*0.4, 1e-12) {
		t.Errorf("EWMAChart(λ 0.2, σ 2) limits after 1 point = %+v, want Sigma 0.4, UCL 11.2", got)
	}
	for range 200 {
		c.Add(10)
	}
	if got, want := c.Limits().Sigma, 2*math.Sqrt(0.2/1.8); !within(got, want, 1e-12) {
		t.Errorf("EWMAChart(λ 0.2, σ 2) limits after 201 points: Sigma = %g, want asymptotic %g", got, want)
	}
	if c.Value() != 10 {
		t.Errorf("Value() = %g on constant target input, want 10", c.Value())
	}
}

func TestEWMAChartARL(t *testing.T) {
	// Physics reference §5.7 (Markov chain, asymptotic limits; Lucas &
	// Saccucci 1990): Monte-Carlo with fixed seeds, ±5 %.
	if testing.Short() {
		t.Skip("Monte-Carlo ARL in -short mode")
	}
	tests := []struct {
		lambda, l, shift float64
		runs             int
		want             float64
	}{
		{0.10, 2.814, 0, 3000, 499.4},
		{0.10, 2.814, 1, 4000, 10.3},
		{0.20, 2.962, 0, 3000, 499.6},
		{0.20, 2.962, 2, 4000, 3.74},
		{0.10, 2.7, 0, 3000, 368.9},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("lambda%g_L%g_shift%g", tt.lambda, tt.l, tt.shift), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(300+i), 4))
			total := 0
			for range tt.runs {
				c := spc.NewEWMAChart(0, 1, tt.lambda, tt.l)
				c.SetAsymptotic(true)
				for {
					total++
					if high, low := c.Add(tt.shift + r.NormFloat64()); high || low {
						break
					}
				}
			}
			got := float64(total) / float64(tt.runs)
			t.Logf("ARL = %.2f", got)
			if !within(got, tt.want, 0.05*tt.want) {
				t.Errorf("EWMAChart(λ %g, L %g) ARL at %gσ = %.2f over %d runs, want %g ± 5 %%", tt.lambda, tt.l, tt.shift, got, tt.runs, tt.want)
			}
		})
	}
}

func TestViolationAlarm(t *testing.T) {
	vs := spc.Rules([]float64{2.5, 3.5}, unit)
	tests := []struct {
		v    spc.Violation
		want process.Severity
	}{
		{vs[0], process.SeverityCritical}, // WE1
		{vs[1], process.SeverityWarning},  // WE2
	}
	for _, tt := range tests {
		t.Run(tt.v.Rule, func(t *testing.T) {
			a := tt.v.Alarm("beam_current_ma", 12.3)
			want := process.Alarm{Source: process.SourceSPC, Parameter: "beam_current_ma", Rule: tt.v.Rule,
				Message: tt.v.Message, Severity: tt.want, Value: 3.5, TimeS: 12.3}
			if a != want {
				t.Errorf("Violation.Alarm = %+v, want %+v", a, want)
			}
		})
	}
}

func TestCUSUMAlarm(t *testing.T) {
	c := spc.NewCUSUM(10, 1, 0.5, 4)
	for range 4 {
		c.Add(11.5)
	}
	if high, _ := c.Add(11.5); !high {
		t.Fatalf("CUSUM did not signal on the 5th 1.5σ point")
	}
	a := c.Alarm("wafer_temp_c", true, 11.5, 3.4)
	if a.Source != process.SourceFDC || a.Rule != spc.CUSUMHigh || a.Severity != process.SeverityWarning || a.Value != 11.5 || a.TimeS != 3.4 {
		t.Errorf("CUSUM.Alarm = %+v, want an FDC warning %s at 3.4 s for 11.5", a, spc.CUSUMHigh)
	}
	if want := "CUSUM+: upward drift of wafer_temp_c from target 10 (CUSUM beyond h = 4σ); estimated mean 11.5"; a.Message != want {
		t.Errorf("CUSUM.Alarm message = %q, want %q", a.Message, want)
	}
}
