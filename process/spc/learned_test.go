package spc_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spectra-fab/spectra/process/spc"
)

// With a long baseline the learned chart is the textbook one: the CUSUM
// (k = ½, h = 4) on in-control N(0, 1) points has ARL₀ ≈ 168 (physics
// reference §5.6, two-sided), and the Shewhart limit at 3σ̂ is crossed by
// 0.27 % of the points (§5.7).
func TestLearnedMatchesTextbookARL(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const reps = 1000
	var sum float64
	var beyond, points int
	for range reps {
		c := spc.NewLearned(400, 3, 0.5, 4, 0)
		for range 400 {
			c.Add(rng.NormFloat64())
		}
		for n := 1; ; n++ {
			p := c.Add(rng.NormFloat64())
			points++
			if math.Abs(p.Z) > 3 {
				beyond++
			}
			if p.Step != 0 || p.Drift != 0 {
				sum += float64(n)
				break
			}
		}
	}
	arl := sum / reps
	// Signals from either the CUSUM or the 3σ limit: the combined ARL₀
	// is 1/(1/168 + 1/370) ≈ 116 (independent-signal approximation).
	if arl < 100 || arl > 135 {
		t.Errorf("combined ARL₀ = %.1f, want ≈ 116 (CUSUM 168 ∥ Shewhart 370)", arl)
	}
	if f := float64(beyond) / float64(points); f < 0.0018 || f > 0.0036 {
		t.Errorf("fraction beyond 3σ̂ = %.4f, want ≈ 0.0027", f)
	}
}

// A jump is a step, a ramp crossing the limit a drift; after a step the
// chart re-centres, so a level that stays put raises nothing more.
func TestLearnedStepOrDrift(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	newChart := func() *spc.Learned {
		c := spc.NewLearned(20, 5, 0.5, 5, 0)
		for range 20 {
			c.Add(rng.NormFloat64())
		}
		return c
	}
	c := newChart()
	var steps, drifts int
	for i := range 40 {
		x := rng.NormFloat64()
		if i >= 10 {
			x += 20
		}
		p := c.Add(x)
		steps += abs(p.Step)
		drifts += abs(p.Drift)
	}
	if steps != 1 || drifts != 0 {
		t.Errorf("20σ step: %d steps, %d drifts, want 1 step", steps, drifts)
	}
	c = newChart()
	steps, drifts = 0, 0
	first := 0
	for i := range 50 {
		p := c.Add(rng.NormFloat64() - 0.4*float64(i))
		steps += abs(p.Step)
		drifts += abs(p.Drift)
		if first == 0 && (p.Step != 0 || p.Drift < 0) {
			first = p.Drift
		}
	}
	if first != -1 || drifts == 0 {
		t.Errorf("−0.4σ per point drift: first signal %d (want a downward drift), %d steps, %d drifts", first, steps, drifts)
	}
}

// MinSigma floors σ̂: a baseline of identical points does not make every
// later wobble an alarm.
func TestLearnedMinSigma(t *testing.T) {
	c := spc.NewLearned(5, 6, 0.5, 5, 0.1)
	for range 5 {
		c.Add(10)
	}
	if p := c.Add(10.3); p.Step != 0 || math.Abs(p.Z-3) > 1e-9 {
		t.Errorf("point 0.3 above a flat baseline with σ floor 0.1: %+v, want z = 3, no step", p)
	}
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}
