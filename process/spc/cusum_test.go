package spc_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/spectra-fab/spectra/process/spc"
)

func TestCUSUMSequence(t *testing.T) {
	// Hand-computed tabular CUSUM, target 10, σ 1, k ½, h 4.
	type step struct {
		x         float64
		high, low bool
		hi, lo    float64
	}
	tests := []struct {
		name  string
		head  float64
		steps []step
		shift float64 // Shift() after the last step
	}{
		{
			name: "upward_1.5sigma",
			steps: []step{
				{11.5, false, false, 1, 0}, {11.5, false, false, 2, 0}, {11.5, false, false, 3, 0},
				{11.5, false, false, 4, 0}, // = h: no signal yet (C > h)
				{11.5, true, false, 0, 0},  // 5 > 4: signal, restart
				{11.5, false, false, 1, 0},
			},
			shift: 11.5, // μ0 + σ(k + C⁺/N⁺) = 10 + 0.5 + 5/5
		},
		{
			name: "downward_2sigma",
			steps: []step{
				{8, false, false, 0, 1.5}, {8, false, false, 0, 3}, {8, false, true, 0, 0},
			},
			shift: 8, // 10 − (0.5 + 4.5/3)
		},
		{
			name: "in_control_drains",
			steps: []step{
				{11.2, false, false, 0.7, 0}, {10.0, false, false, 0.2, 0}, {9.0, false, false, 0, 0.5}, {10.2, false, false, 0, 0},
			},
			shift: 10,
		},
		{
			name: "head_start",
			head: 2,
			steps: []step{
				{11.5, false, false, 3, 0}, {11.5, false, false, 4, 0}, {11.5, true, false, 2, 2},
			},
			shift: 11.5, // the head start is not evidence: 10 + 0.5 + (5 − 2)/3
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := spc.NewCUSUM(10, 1, 0.5, 4)
			if tt.head > 0 {
				c.SetHeadStart(tt.head)
			}
			for i, s := range tt.steps {
				high, low := c.Add(s.x)
				if high != s.high || low != s.low {
					t.Errorf("step %d: Add(%g) = (%v, %v), want (%v, %v)", i, s.x, high, low, s.high, s.low)
				}
				if !within(c.High(), s.hi, 1e-12) || !within(c.Low(), s.lo, 1e-12) {
					t.Errorf("step %d: after Add(%g) High, Low = %g, %g, want %g, %g", i, s.x, c.High(), c.Low(), s.hi, s.lo)
				}
			}
			if !within(c.Shift(), tt.shift, 1e-12) {
				t.Errorf("Shift() = %g, want %g", c.Shift(), tt.shift)
			}
			if c.Len() != len(tt.steps) {
				t.Errorf("Len() = %d, want %d", c.Len(), len(tt.steps))
			}
		})
	}
}

func TestCUSUMDefaults(t *testing.T) {
	c := spc.NewCUSUM(0, 1, 0, 0)
	if c.K() != spc.DefaultK || c.H() != spc.DefaultH {
		t.Errorf("NewCUSUM(0, 1, 0, 0): K, H = %g, %g, want %g, %g", c.K(), c.H(), spc.DefaultK, spc.DefaultH)
	}
	z := spc.NewCUSUM(5, 0, 0, 0)
	if high, low := z.Add(5); high || low {
		t.Errorf("NewCUSUM(σ = 0).Add(target) = (%v, %v), want no signal", high, low)
	}
	if high, _ := z.Add(5.1); !high || z.Shift() != 5.1 {
		t.Errorf("NewCUSUM(σ = 0).Add(5.1) high = %v, Shift = %g, want true, 5.1", high, z.Shift())
	}
}

// cusumARL returns the mean number of points to the first signal of a fresh
// CUSUM over runs seeded streams of N(shift, 1).
func cusumARL(h, shift float64, runs int, seed uint64) float64 {
	r := rand.New(rand.NewPCG(seed, 3))
	total := 0
	for range runs {
		c := spc.NewCUSUM(0, 1, 0.5, h)
		for {
			total++
			if high, low := c.Add(shift + r.NormFloat64()); high || low {
				break
			}
		}
	}
	return float64(total) / float64(runs)
}

func TestCUSUMARL(t *testing.T) {
	// Physics reference §5.6 and §7 vector 24 (Brook–Evans, two-sided):
	// k = ½, h = 4: ARL0 168, ARL(1σ) 8.38; h = 5: 465, 10.38. Monte-Carlo
	// with fixed seeds, ±5 %.
	if testing.Short() {
		t.Skip("Monte-Carlo ARL in -short mode")
	}
	tests := []struct {
		h, shift float64
		runs     int
		want     float64
	}{
		{4, 0, 6000, 168},
		{4, 1, 6000, 8.38},
		{4, 2, 6000, 3.34},
		{5, 0, 4000, 465},
		{5, 1, 6000, 10.38},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("h%g_shift%g", tt.h, tt.shift), func(t *testing.T) {
			got := cusumARL(tt.h, tt.shift, tt.runs, uint64(200+i))
			t.Logf("ARL = %.2f", got)
			if !within(got, tt.want, 0.05*tt.want) {
				t.Errorf("CUSUM(k 0.5, h %g) ARL at %gσ = %.2f over %d runs, want %g ± 5 %%", tt.h, tt.shift, got, tt.runs, tt.want)
			}
		})
	}
}

func TestCUSUMQuietInControl(t *testing.T) {
	// A fixed seeded in-control stream of 100 points (well under ARL0 = 465
	// for the defaults) raises nothing, and its sums stay below h.
	c := spc.NewCUSUM(0, 1, spc.DefaultK, spc.DefaultH)
	for i, x := range normals(11, 100, 0) {
		if high, low := c.Add(x); high || low {
			t.Fatalf("Add(point %d = %g) = (%v, %v) on in-control data, want no signal", i, x, high, low)
		}
	}
	if c.Alarms() != 0 {
		t.Errorf("Alarms() = %d, want 0", c.Alarms())
	}
}

func TestCUSUMDetectsSustainedShift(t *testing.T) {
	// After a 1σ shift at point 50 of a seeded stream, a default CUSUM
	// signals high within a few ARL(1σ) = 10.4, and estimates the shift.
	pts := normals(12, 120, 0)
	for i := 50; i < len(pts); i++ {
		pts[i]++
	}
	c := spc.NewCUSUM(0, 1, spc.DefaultK, spc.DefaultH)
	at := -1
	for i, x := range pts {
		if high, low := c.Add(x); high || low {
			if low || i < 50 {
				t.Fatalf("Add(point %d) = (%v, %v), want only a high signal after point 50", i, high, low)
			}
			at = i
			break
		}
	}
	if at < 0 || at-50 > 40 {
		t.Fatalf("CUSUM signalled at point %d, want within 40 points of the shift at 50", at)
	}
	if s := c.Shift(); s < 0.5 || s > 2 {
		t.Errorf("Shift() = %g after a 1σ shift, want in [0.5, 2]", s)
	}
}

func BenchmarkCUSUMAdd(b *testing.B) {
	pts := normals(1, 1024, 0)
	c := spc.NewCUSUM(0, 1, spc.DefaultK, spc.DefaultH)
	i := 0
	for b.Loop() {
		c.Add(pts[i&1023])
		i++
	}
}
