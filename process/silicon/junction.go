package silicon

import (
	"fmt"
	"math"
)

// nmToCm converts nm to cm.
const nmToCm = 1e-7

// SheetResistance returns the sheet resistance in Ω/sq of a doped layer:
//
//	Rs = 1 / (q ∫ μ(N + Nb) · (N − Nb) dx)
//
// over the depths where the net doping N − Nb is of the implanted type
// (physics reference §2.2; Irvin, Bell Syst. Tech. J. 41, 387 (1962) for the
// curves it replaces). depthNm (nm, increasing) and concCm3 (the electrically
// active implanted concentration, cm⁻³) are the profile; background is the
// substrate doping of the opposite type (cm⁻³); c is the implanted
// carrier, which chooses the mobility. Mobility sees the total ionised
// concentration N + Nb and full ionisation is assumed.
//
// The integral is the trapezoid rule on the given grid, with the segment
// that crosses the junction cut at the linearly interpolated crossing, so
// the grid must resolve the profile. SheetResistance returns +Inf when no
// depth is of the implanted type. It panics if the slices differ in length.
func SheetResistance(depthNm, concCm3 []float64, background float64, c Carrier) float64 {
	mustMatch("SheetResistance", depthNm, concCm3)
	integrand := func(n float64) float64 {
		net := n - background
		if net <= 0 {
			return 0
		}
		return Mobility(c, n+background) * net
	}
	var sum float64 // cm²/(V·s) · cm⁻³ · nm
	for i := 0; i+1 < len(depthNm); i++ {
		x0, x1 := depthNm[i], depthNm[i+1]
		n0, n1 := concCm3[i]-background, concCm3[i+1]-background
		switch {
		case n0 > 0 && n1 > 0:
			sum += (x1 - x0) * (integrand(concCm3[i]) + integrand(concCm3[i+1])) / 2
		case n0 > 0: // junction inside the segment, deeper side compensated
			xc := x0 + (x1-x0)*n0/(n0-n1)
			sum += (xc - x0) * integrand(concCm3[i]) / 2
		case n1 > 0:
			xc := x1 - (x1-x0)*n1/(n1-n0)
			sum += (x1 - xc) * integrand(concCm3[i+1]) / 2
		}
	}
	if sum <= 0 {
		return math.Inf(1)
	}
	return 1 / (Charge * sum * nmToCm)
}

// JunctionDepth returns the metallurgical junction depth in µm: the depth
// where the profile concCm3 (cm⁻³, on depthNm in nm, increasing) falls
// through background for the last time below its peak. Between grid points
// the crossing is interpolated in log(N), which is exact for exponential
// and nearly so for Gaussian tails.
//
// It returns 0 when the profile never exceeds background (no junction), and
// the deepest grid depth when the profile is still above background there
// (the true junction lies deeper). It panics if the slices differ in length.
func JunctionDepth(depthNm, concCm3 []float64, background float64) float64 {
	mustMatch("JunctionDepth", depthNm, concCm3)
	if len(concCm3) == 0 {
		return 0
	}
	peak := 0
	for i, n := range concCm3 {
		if n > concCm3[peak] {
			peak = i
		}
	}
	if concCm3[peak] <= background {
		return 0
	}
	last := peak // deepest point at or below the peak still above background
	for i := len(concCm3) - 1; i > peak; i-- {
		if concCm3[i] > background {
			last = i
			break
		}
	}
	if last == len(concCm3)-1 {
		return depthNm[last] / 1000
	}
	x0, x1 := depthNm[last], depthNm[last+1]
	n0, n1 := concCm3[last], concCm3[last+1]
	var f float64
	if n1 > 0 && background > 0 {
		f = math.Log(n0/background) / math.Log(n0/n1)
	} else {
		f = (n0 - background) / (n0 - n1)
	}
	return (x0 + f*(x1-x0)) / 1000
}

// GaussianJunctionDepth returns the deep junction of a Gaussian profile in
// µm, xj = Rp + ΔRp·√(2 ln(Np/Nb)) (physics reference §2.3), for Rp and ΔRp
// in nm and the peak and background concentrations in cm⁻³. It returns 0
// when the peak does not exceed the background, and +Inf for background ≤ 0.
func GaussianJunctionDepth(rpNm, drpNm, peakCm3, background float64) float64 {
	if peakCm3 <= background {
		return 0
	}
	if background <= 0 {
		return math.Inf(1)
	}
	return (rpNm + drpNm*math.Sqrt(2*math.Log(peakCm3/background))) / 1000
}

// GaussianPeak returns the peak concentration in cm⁻³ of a Gaussian profile
// of dose doseCm2 (cm⁻²) and straggle drpNm (nm): Q/(√(2π)·ΔRp) (physics
// reference §1.5).
func GaussianPeak(doseCm2, drpNm float64) float64 {
	return doseCm2 / (math.Sqrt(2*math.Pi) * drpNm * nmToCm)
}

func mustMatch(fn string, depth, conc []float64) {
	if len(depth) != len(conc) {
		panic(fmt.Sprintf("silicon.%s: %d depths but %d concentrations", fn, len(depth), len(conc)))
	}
}
