package rtp

import (
	"math"
	"math/rand/v2"
)

// StefanBoltzmann is σ_SB in W/m²/K⁴.
const StefanBoltzmann = 5.670374e-8

// zeroC is 0 °C in K.
const zeroC = 273.15

// siMolarMass is the molar mass of Si in kg/mol, which turns the NIST
// Shomate heat capacity (J/mol/K) into J/kg/K.
const siMolarMass = 0.0280855

// Params are the parameters of the lumped wafer and lamp model (physics
// reference §4.1). The zero value is not useful; start from DefaultParams.
type Params struct {
	MassKg float64 // wafer mass
	AreaM2 float64 // area of one face

	// Emissivity ε(T) of the wafer, a logistic from EmissivityLow (cold,
	// lightly doped Si is semi-transparent in the IR) to EmissivityHigh
	// (opaque Si above ~600–700 °C) centred on EmissivityMidC with width
	// EmissivityWidthC. EmissivityLow = EmissivityHigh gives a constant ε.
	EmissivityHigh   float64
	EmissivityLow    float64
	EmissivityMidC   float64
	EmissivityWidthC float64

	// Absorptivity is the lamp-to-wafer coupling of an opaque (hot) wafer;
	// it scales with ε(T)/EmissivityHigh (Kirchhoff), so a cold wafer
	// absorbs less of the lamp light.
	Absorptivity float64

	MaxLampPowerW float64 // electrical lamp power at 100 %
	LampTauS      float64 // first-order filament lag τ_L

	WallTempK float64 // chamber walls the wafer radiates to
	GasTempC  float64 // process gas temperature

	// Convection to the process gas from the front face:
	// h = HNatural + HPerSLM·(N2 + O2 flow), W/m²/K.
	HNatural float64
	HPerSLM  float64
}

// DefaultParams is the 300 mm chamber of physics reference §4: a
// 775 µm, 300 mm wafer (m = 127.6 g, A = 0.07069 m² per face), ε = 0.68
// when hot falling to 0.5 when cold, 45 % lamp coupling, 100 kW of lamps
// (K = 10 °C/kW at 1000 °C, §4.2) with τ_L = 0.2 s, walls at 300 K and a
// small convective loss to the gas.
var DefaultParams = Params{
	MassKg:           2329 * math.Pi * 0.150 * 0.150 * 775e-6,
	AreaM2:           math.Pi * 0.150 * 0.150,
	EmissivityHigh:   0.68,
	EmissivityLow:    0.50,
	EmissivityMidC:   450,
	EmissivityWidthC: 60,
	Absorptivity:     0.45,
	MaxLampPowerW:    100e3,
	LampTauS:         0.2,
	WallTempK:        300,
	GasTempC:         25,
	HNatural:         2,
	HPerSLM:          0.3,
}

// HeatCapacity returns the specific heat of crystalline Si in J/kg/K at
// tempC: the NIST Shomate equation (Chase 1998, NIST-JANAF; valid
// 298–1685 K), physics reference §4.1. 1000 °C: 979.7 J/kg/K.
func HeatCapacity(tempC float64) float64 {
	t := (tempC + zeroC) / 1000
	cp := 22.81719 + 3.899510*t - 0.082885*t*t + 0.042111*t*t*t - 0.354063/(t*t)
	return cp / siMolarMass
}

// Emissivity returns the wafer's total emissivity at tempC.
func (p Params) Emissivity(tempC float64) float64 {
	if p.EmissivityLow == p.EmissivityHigh || p.EmissivityWidthC <= 0 {
		return p.EmissivityHigh
	}
	return p.EmissivityLow + (p.EmissivityHigh-p.EmissivityLow)/(1+math.Exp(-(tempC-p.EmissivityMidC)/p.EmissivityWidthC))
}

// absorptivity returns the lamp-to-wafer coupling at tempC.
func (p Params) absorptivity(tempC float64) float64 {
	return p.Absorptivity * p.Emissivity(tempC) / p.EmissivityHigh
}

// HeatCapacityJK returns m·cp(T) in J/K.
func (p Params) HeatCapacityJK(tempC float64) float64 {
	return p.MassKg * HeatCapacity(tempC)
}

// RadiatedW returns the net power radiated by both faces at tempC,
// 2Aε(T)σ(T⁴ − T_w⁴), in W. 1000 °C, ε = 0.68: 14.28 kW.
func (p Params) RadiatedW(tempC float64) float64 {
	t := tempC + zeroC
	tw := p.WallTempK
	return 2 * p.AreaM2 * p.Emissivity(tempC) * StefanBoltzmann * (t*t*t*t - tw*tw*tw*tw)
}

// ConvectedW returns the power lost to the process gas at tempC with a
// total gas flow of flowSLM.
func (p Params) ConvectedW(tempC, flowSLM float64) float64 {
	h := p.HNatural + p.HPerSLM*flowSLM
	return h * p.AreaM2 * (tempC - p.GasTempC)
}

// LossW returns the wafer's total heat loss at tempC: radiation plus
// convection.
func (p Params) LossW(tempC, flowSLM float64) float64 {
	return p.RadiatedW(tempC) + p.ConvectedW(tempC, flowSLM)
}

// ConductanceWK returns G = dLoss/dT in W/K at tempC, by a central
// difference (it includes the change of ε with T). 1000 °C, constant
// ε = 0.68, no gas: 45.0 W/K.
func (p Params) ConductanceWK(tempC, flowSLM float64) float64 {
	const h = 0.05
	return (p.LossW(tempC+h, flowSLM) - p.LossW(tempC-h, flowSLM)) / (2 * h)
}

// TimeConstantS returns the wafer's linearised time constant m·cp/G in s
// (1000 °C: 2.78 s).
func (p Params) TimeConstantS(tempC, flowSLM float64) float64 {
	return p.HeatCapacityJK(tempC) / p.ConductanceWK(tempC, flowSLM)
}

// LampPct returns the lamp command in % that delivers absorbed power
// absorbedW at wafer temperature tempC with lamp efficiency eff (1 =
// nominal). It is not clamped.
func (p Params) LampPct(absorbedW, tempC, eff float64) float64 {
	return absorbedW / (p.absorptivity(tempC) * p.MaxLampPowerW * eff) * 100
}

// SteadyLampPct returns the steady-state lamp command in % that holds the
// wafer at tempC with gas flow flowSLM (nominal lamp efficiency).
func (p Params) SteadyLampPct(tempC, flowSLM float64) float64 {
	return p.LampPct(p.LossW(tempC, flowSLM), tempC, 1)
}

// GainCPerPct returns the linearised static gain of the plant at tempC in
// °C per % of lamp power: α(T)·P_max/100/G (1000 °C: ≈10 °C/%).
func (p Params) GainCPerPct(tempC, flowSLM float64) float64 {
	return p.absorptivity(tempC) * p.MaxLampPowerW / 100 / p.ConductanceWK(tempC, flowSLM)
}

// derivative returns dT/dt (K/s) and dP/dt (W/s) of the wafer at tempC with
// lamp output lampW for a lamp target targetW.
func (p Params) derivative(tempC, lampW, targetW, flowSLM float64) (dT, dP float64) {
	// ε(T) once for absorption and radiation (it is the costly part).
	eps := p.Emissivity(tempC)
	t, tw := tempC+zeroC, p.WallTempK
	loss := 2*p.AreaM2*eps*StefanBoltzmann*(t*t*t*t-tw*tw*tw*tw) + p.ConvectedW(tempC, flowSLM)
	dT = (p.Absorptivity*eps/p.EmissivityHigh*lampW - loss) / p.HeatCapacityJK(tempC)
	dP = (targetW - lampW) / p.LampTauS
	return dT, dP
}

// Wafer is the simulated wafer and lamp bank: the true wafer temperature
// and the lamps' electrical output behind their first-order lag.
type Wafer struct {
	P       Params
	TempC   float64 // true wafer temperature
	LampW   float64 // lamp output after the filament lag
	FlowSLM float64 // total gas flow (N2 + O2)
}

// substeps per control period; 10 ms RK4 steps resolve τ_L = 0.2 s and the
// fastest wafer time constant (≈1.8 s at 1200 °C) with ample margin.
const substeps = 10

// Advance integrates the wafer over dt seconds with the lamp commanded to
// cmdPct (0–100 %, clamped) at lamp efficiency eff (1 = nominal; an
// efficiency disturbance scales the delivered power).
func (w *Wafer) Advance(dt, cmdPct, eff float64) {
	cmdPct = min(max(cmdPct, 0), 100)
	target := cmdPct / 100 * w.P.MaxLampPowerW * max(eff, 0)
	h := dt / substeps
	T, L := w.TempC, w.LampW
	for range substeps {
		k1T, k1L := w.P.derivative(T, L, target, w.FlowSLM)
		k2T, k2L := w.P.derivative(T+h/2*k1T, L+h/2*k1L, target, w.FlowSLM)
		k3T, k3L := w.P.derivative(T+h/2*k2T, L+h/2*k2L, target, w.FlowSLM)
		k4T, k4L := w.P.derivative(T+h*k3T, L+h*k3L, target, w.FlowSLM)
		T += h / 6 * (k1T + 2*k2T + 2*k3T + k4T)
		L += h / 6 * (k1L + 2*k2L + 2*k3L + k4L)
	}
	w.TempC, w.LampW = T, L
}

// Pyrometer is an emissivity-compensated pyrometer: a first-order optical
// and electronic filter (τ = 50 ms) plus white noise of 0.3 °C rms above
// 500 °C, growing linearly to 1.5 °C rms at 25 °C where lightly doped Si
// turns transparent (physics reference §4.2).
type Pyrometer struct {
	TauS     float64
	filtered float64
	rng      *rand.Rand
}

// NewPyrometer returns a pyrometer reading tempC with noise drawn from rng.
func NewPyrometer(tempC float64, rng *rand.Rand) *Pyrometer {
	return &Pyrometer{TauS: 0.05, filtered: tempC, rng: rng}
}

// NoiseC returns the pyrometer's rms noise in °C at tempC.
func NoiseC(tempC float64) float64 {
	if tempC >= 500 {
		return 0.3
	}
	return 0.3 + 1.2*(500-max(tempC, 25))/475
}

// Read updates the filter with the true temperature at the end of a period
// of dt seconds (taken as a linear change from the previous reading's true
// value) and returns the noisy reading.
func (p *Pyrometer) Read(trueC, dt float64) float64 {
	a := math.Exp(-dt / p.TauS)
	p.filtered = trueC + (p.filtered-trueC)*a
	if p.rng == nil {
		return p.filtered
	}
	return p.filtered + NoiseC(p.filtered)*p.rng.NormFloat64()
}
