package rtp

import (
	"fmt"
	"math"

	"github.com/spectra-fab/spectra/process/silicon"
)

// Phase is one ramp or hold of a temperature profile.
type Phase struct {
	Segment int     // segment index, from 0
	Ramp    bool    // ramping (true) or holding (false)
	FromC   float64 // set-point at the start
	ToC     float64 // set-point at the end
	RateCS  float64 // signed ramp rate, 0 while holding
	StartS  float64
	EndS    float64
}

// Profile is the set-point generator of a recipe: each segment ramps from
// the current set-point to its target at its ramp rate (the limit rate for
// a step: 100 °C/s up, 50 °C/s down), then holds the target for its
// duration (the specification: 800 °C reached at 50 °C/s, then held 5 s).
type Profile struct {
	InitialC float64
	Phases   []Phase
	Segments int
	TotalS   float64
}

// NewProfile builds the set-point profile of segments starting from
// initialC.
func NewProfile(initialC float64, segments []Segment) Profile {
	p := Profile{InitialC: initialC, Segments: len(segments)}
	sp, t := initialC, 0.0
	for i, s := range segments {
		if d := s.TargetC - sp; d != 0 {
			rate := MaxRampUpCS
			if d < 0 {
				rate = MaxRampDownCS
			}
			if s.RampRateCS != nil && *s.RampRateCS > 0 {
				rate = *s.RampRateCS
			}
			dur := math.Abs(d) / rate
			p.Phases = append(p.Phases, Phase{Segment: i, Ramp: true, FromC: sp, ToC: s.TargetC,
				RateCS: math.Copysign(rate, d), StartS: t, EndS: t + dur})
			t += dur
		}
		hold := max(s.DurationS, 0)
		p.Phases = append(p.Phases, Phase{Segment: i, FromC: s.TargetC, ToC: s.TargetC, StartS: t, EndS: t + hold})
		t += hold
		sp = s.TargetC
	}
	p.TotalS = t
	return p
}

// phaseAt returns the index of the phase running at time t (the last one
// after the end, -1 before any phase or for an empty profile).
func (p *Profile) phaseAt(t float64) int {
	for i := range p.Phases {
		if t < p.Phases[i].EndS {
			return i
		}
	}
	return len(p.Phases) - 1
}

// At returns the set-point at time t (s from the start) and its rate of
// change.
func (p *Profile) At(t float64) (spC, rateCS float64) {
	i := p.phaseAt(t)
	if i < 0 {
		return p.InitialC, 0
	}
	ph := p.Phases[i]
	if !ph.Ramp {
		return ph.ToC, 0
	}
	if t >= ph.EndS {
		return ph.ToC, 0
	}
	if t <= ph.StartS {
		return ph.FromC, ph.RateCS
	}
	return ph.FromC + ph.RateCS*(t-ph.StartS), ph.RateCS
}

// Setpoint returns the set-point at time t.
func (p *Profile) Setpoint(t float64) float64 {
	sp, _ := p.At(t)
	return sp
}

// StepName names what the process does at time t, e.g.
// "Segment 2/4: ramping to 1000 °C".
func (p *Profile) StepName(t float64) string {
	i := p.phaseAt(t)
	if i < 0 {
		return "Processing"
	}
	ph := p.Phases[i]
	if ph.Ramp {
		return fmt.Sprintf("Segment %d/%d: ramping to %s °C", ph.Segment+1, p.Segments, num(ph.ToC))
	}
	return fmt.Sprintf("Segment %d/%d: holding at %s °C", ph.Segment+1, p.Segments, num(ph.ToC))
}

// PeakC returns the highest set-point of the profile.
func (p *Profile) PeakC() float64 {
	peak := p.InitialC
	for _, ph := range p.Phases {
		peak = max(peak, ph.ToC)
	}
	return peak
}

// trace samples the set-point at the phase corners, which is exact for the
// piecewise-linear profile.
func (p *Profile) trace() (times, temps []float64) {
	times = append(times, 0)
	temps = append(temps, p.InitialC)
	for _, ph := range p.Phases {
		if ph.EndS > times[len(times)-1] {
			times = append(times, ph.EndS)
			temps = append(temps, ph.ToC)
		}
	}
	return times, temps
}

// Budget returns the thermal budget Dt = ∫D dt (cm²) of species along the
// set-point profile (physics reference §3.2).
func (p *Profile) Budget(species string) float64 {
	times, temps := p.trace()
	return silicon.ThermalBudget(species, times, temps)
}

// Budget is the thermal-budget limit a recipe is checked against: a
// warning, never an error, when the profile's Fickian diffusion length
// √(2Dt) of the implanted species (boron when the recipe names none)
// exceeds MaxDiffusionNm, or when it holds at or above HotC for longer than
// MaxHotS.
type Budget struct {
	MaxDiffusionNm float64
	HotC           float64
	MaxHotS        float64
}

// DefaultBudget suits shallow-junction activation anneals: 25 nm of
// diffusion (B at 1000 °C takes ≈ 220 s to get there), and no more than
// 60 s at or above 1150 °C.
var DefaultBudget = Budget{MaxDiffusionNm: 25, HotC: 1150, MaxHotS: 60}

// budgetSpecies returns the species whose diffusion the budget tracks.
func (r Recipe) budgetSpecies() string {
	if r.Implant != nil && silicon.IsDopant(r.Implant.Species) {
		return r.Implant.Species
	}
	return silicon.Boron
}

// Warnings returns the thermal-budget warnings of a valid recipe against
// b (use DefaultBudget), or nil.
func (r Recipe) Warnings(b Budget) []string {
	p := NewProfile(r.InitialC, r.Segments)
	species := r.budgetSpecies()
	var out []string
	dt := p.Budget(species)
	if l := silicon.BroadeningNm(dt); b.MaxDiffusionNm > 0 && l > b.MaxDiffusionNm {
		out = append(out, fmt.Sprintf("thermal budget: %s diffusion length √(2Dt) = %.1f nm (Dt = %.3g cm²) exceeds %s nm",
			species, l, dt, num(b.MaxDiffusionNm)))
	}
	if b.MaxHotS > 0 {
		var hot float64
		for _, ph := range p.Phases {
			if !ph.Ramp && ph.ToC >= b.HotC {
				hot += ph.EndS - ph.StartS
			}
		}
		if hot > b.MaxHotS {
			out = append(out, fmt.Sprintf("thermal budget: %.0f s held at or above %s °C exceeds %s s", hot, num(b.HotC), num(b.MaxHotS)))
		}
	}
	return out
}

// adjusted returns the segments with the run-to-run adjustments applied:
// temp_offset_c moves every segment at the recipe's peak target (clamped to
// the recipe limits), hold_offset_s lengthens (or shortens) the last
// segment at the peak target (clamped to 0–300 s).
func adjusted(segments []Segment, r2r map[string]float64) []Segment {
	out := make([]Segment, len(segments))
	copy(out, segments)
	if len(out) == 0 || len(r2r) == 0 {
		return out
	}
	peak := math.Inf(-1)
	for _, s := range out {
		peak = max(peak, s.TargetC)
	}
	last := -1
	for i := range out {
		if out[i].TargetC == peak {
			last = i
		}
	}
	if off := clampFinite(r2r[R2RTempOffset], -MaxTempOffsetC, MaxTempOffsetC); off != 0 {
		for i := range out {
			if out[i].TargetC == peak {
				out[i].TargetC = min(max(peak+off, MinTempC), MaxTempC)
			}
		}
	}
	if off := clampFinite(r2r[R2RHoldOffset], -MaxSegmentS, MaxSegmentS); off != 0 && last >= 0 {
		out[last].DurationS = min(max(out[last].DurationS+off, 0), MaxSegmentS)
	}
	return out
}

func clampFinite(v, lo, hi float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return min(max(v, lo), hi)
}
