package ion

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion/lss"
	"github.com/spectra-fab/spectra/process/silicon"
)

// depthPoints is the number of points of a 1-D profile.
const depthPoints = 201

// Profile1D is a depth profile: concentration (cm⁻³) at each depth (nm
// below the surface), with the vertical moments it was built from.
type Profile1D struct {
	DepthNm          []float64 `json:"depth_nm"`
	ConcentrationCm3 []float64 `json:"concentration_cm3"`
	ProjectedRangeNm float64   `json:"projected_range_nm"`
	StraggleNm       float64   `json:"straggle_nm"`
}

// depthProfile returns the as-implanted profile of dose (cm⁻²) with
// vertical moments m: a Pearson density on a uniform grid from the surface
// to where it falls below 1e-6 of its peak, normalised so that the dose is
// retained in the silicon (what would land above the surface, a fraction
// given by Pearson.Fraction, is put back in proportion; physics reference
// §1.5 normalises numerically too).
func depthProfile(m lss.Moments, dose float64) (Profile1D, Pearson) {
	sh := shapeOf(m)
	pr := Profile1D{
		DepthNm:          slices.Clone(sh.depth),
		ConcentrationCm3: make([]float64, depthPoints),
		ProjectedRangeNm: m.RpNm,
		StraggleNm:       m.DRpNm,
	}
	for i, d := range sh.density {
		pr.ConcentrationCm3[i] = dose * d / sh.inside * 1e7 // nm⁻¹ → cm⁻¹
	}
	return pr, sh.p
}

// shape is what depthProfile computes from the moments alone: the Pearson
// density on its grid and the fraction of it inside the silicon.
type shape struct {
	rp, drp, gamma, beta float64
	p                    Pearson
	inside               float64
	depth, density       []float64 // read-only once kept
}

// shapeOf returns the profile shape of moments m. Every run of one recipe
// has the same moments, and the shape's extent and inside fraction are
// numerical integrals (a third of a seed run's result): the last few are
// kept. The values are exactly those computed in place.
func shapeOf(m lss.Moments) *shape {
	shapes.Lock()
	for _, s := range shapes.last {
		if s.rp == m.RpNm && s.drp == m.DRpNm && s.gamma == m.Gamma && s.beta == m.Beta {
			shapes.Unlock()
			return s
		}
	}
	shapes.Unlock()
	s := &shape{rp: m.RpNm, drp: m.DRpNm, gamma: m.Gamma, beta: m.Beta}
	s.p = NewPearson(m.RpNm, m.DRpNm, m.Gamma, m.Beta)
	xMax := s.p.Extent(1e-6)
	s.inside = s.p.Fraction(0, xMax)
	s.depth = make([]float64, depthPoints)
	s.density = make([]float64, depthPoints)
	for i := range depthPoints {
		x := xMax * float64(i) / (depthPoints - 1)
		s.depth[i] = x
		s.density[i] = s.p.Density(x)
	}
	shapes.Lock()
	defer shapes.Unlock()
	if len(shapes.last) == maxShapes {
		shapes.last = shapes.last[1:]
	}
	shapes.last = append(shapes.last, s)
	return s
}

// maxShapes bounds the shapes kept (each ~3 KB).
const maxShapes = 16

var shapes struct {
	sync.Mutex
	last []*shape
}

// Anneal and substrate the virtual metrology assumes: a 1000 °C, 10 s RTA
// (a standard activation anneal) into a substrate of 1e15 cm⁻³ of the
// opposite type (≈13.5 Ω·cm p-type or 4.6 Ω·cm n-type; physics reference
// §2.1, the N_B of §2.3's test vectors).
const (
	vmAnnealC       = 1000.0
	vmAnnealS       = 10.0
	vmBackgroundCm3 = 1e15
)

// VMPrediction is the virtual-metrology estimate of the electrical result.
type VMPrediction struct {
	SheetResistanceOhmSq float64 `json:"sheet_resistance_ohm_sq"`
	JunctionDepthUm      float64 `json:"junction_depth_um"`
	ActivationPct        float64 `json:"activation_pct"`
}

// predictVM estimates sheet resistance, junction depth and activation of a
// profile after the standard anneal: the profile is broadened by Fickian
// diffusion, √(2Dt) with silicon.Diffusivity (reflecting surface; transient
// enhanced diffusion ignored), a fraction silicon.Activation of it is
// active, capped at silicon.ActiveLimit; Rs integrates the active profile
// with Masetti mobility (silicon.SheetResistance) and xj is where the
// annealed chemical profile meets the background (silicon.JunctionDepth).
func predictVM(speciesName string, pr Profile1D) VMPrediction {
	d := silicon.Diffusivity(speciesName, vmAnnealC) * vmAnnealS // cm²
	depth, conc := pr.Broadened(math.Sqrt(2*d) * 1e7)
	act := silicon.Activation(speciesName, vmAnnealC, vmAnnealS)
	limit := silicon.ActiveLimit(speciesName)
	active := make([]float64, len(conc))
	for i, c := range conc {
		active[i] = math.Min(c*act/100, limit)
	}
	return VMPrediction{
		SheetResistanceOhmSq: silicon.SheetResistance(depth, active, vmBackgroundCm3, silicon.DopantCarrier(speciesName)),
		JunctionDepthUm:      silicon.JunctionDepth(depth, conc, vmBackgroundCm3),
		ActivationPct:        act,
	}
}

// AsImplanted returns the as-implanted depth profile of dose (cm⁻²) of
// species at energyKeV and tiltDeg: this package's range moments (Moments,
// tilted) and Pearson profile, what an implant run reports. It returns an
// error for an unknown species or an energy outside the tables (1–200
// keV). Other process kinds (RTP virtual metrology) use it so that one
// implant has one profile.
func AsImplanted(speciesName string, energyKeV, dose, tiltDeg float64) (Profile1D, error) {
	m, err := Moments(speciesName, energyKeV)
	if err != nil {
		return Profile1D{}, err
	}
	pr, _ := depthProfile(Tilted(m, tiltDeg), dose)
	return pr, nil
}

// Broadened returns the profile after Fickian diffusion with length
// sigmaNm = √(2Dt): the convolution with a Gaussian of σ = sigmaNm and an
// image source for the reflecting surface (dose conserved), on the
// profile's grid extended by 6σ. Below a quarter of the grid step it is
// the profile itself.
func (pr Profile1D) Broadened(sigmaNm float64) (depthNm, concCm3 []float64) {
	n := len(pr.DepthNm)
	dx := pr.DepthNm[n-1] / float64(n-1)
	ext := 0
	if sigmaNm >= dx/4 {
		ext = int(math.Ceil(6*sigmaNm/dx)) + 1
	}
	depth := make([]float64, n+ext)
	for i := range depth {
		depth[i] = dx * float64(i)
	}
	conc := make([]float64, len(depth))
	if sigmaNm < dx/4 {
		copy(conc, pr.ConcentrationCm3)
		return depth, conc
	}
	g := kernelOf(pr.DepthNm, depth, sigmaNm)
	for i := range depth {
		s := 0.0
		row := g[i*n : (i+1)*n]
		for k, c := range pr.ConcentrationCm3 {
			if c == 0 {
				continue
			}
			w := dx
			if k == 0 || k == n-1 {
				w = dx / 2
			}
			s += c * row[k] * w
		}
		conc[i] = s / (math.Sqrt(2*math.Pi) * sigmaNm)
	}
	return depth, conc
}

// kernelOf is Broadened's Gaussian kernel with its image source: at
// [i·len(from)+k], the weight of depth from[k] at depth to[i] for
// diffusion length sigma. It is the same for every run of one recipe
// (their profiles share a grid; only the concentrations differ) and costs
// two exponentials a point, most of a run's result: the last few are
// kept. The values are exactly those computed in place.
func kernelOf(from, to []float64, sigma float64) []float64 {
	kernels.Lock()
	for _, k := range kernels.last {
		if k.sigma == sigma && slices.Equal(k.from, from) && slices.Equal(k.to, to) {
			kernels.Unlock()
			return k.g
		}
	}
	kernels.Unlock()
	g := make([]float64, len(to)*len(from))
	for i, x := range to {
		for k, xp := range from {
			g[i*len(from)+k] = math.Exp(-(x-xp)*(x-xp)/(2*sigma*sigma)) + math.Exp(-(x+xp)*(x+xp)/(2*sigma*sigma))
		}
	}
	kernels.Lock()
	defer kernels.Unlock()
	if len(kernels.last) == maxKernels {
		kernels.last = kernels.last[1:]
	}
	kernels.last = append(kernels.last, &kernel{sigma: sigma, from: slices.Clone(from), to: slices.Clone(to), g: g})
	return g
}

// maxKernels bounds the kernels kept (each ~400 KB for a 201-point grid).
const maxKernels = 8

type kernel struct {
	sigma    float64
	from, to []float64
	g        []float64 // read-only once kept
}

var kernels struct {
	sync.Mutex
	last []*kernel
}

// ProfileRequest is the body of POST /api/ion/simulate/dose_profile.
// Species, energy and dose are required; the others default as a Recipe's
// do, with a 5 mA beam (the seed's example).
type ProfileRequest struct {
	Species         string  `json:"species"`
	EnergyKeV       float64 `json:"energy_kev"`
	DoseAtomsCm2    float64 `json:"dose_atoms_cm2"`
	TiltDeg         float64 `json:"tilt_deg"`
	TwistDeg        float64 `json:"twist_deg"`
	WaferDiameterMM float64 `json:"wafer_diameter_mm,omitempty"`
	BeamCurrentMA   float64 `json:"beam_current_ma,omitempty"`
	ScanSpeedMMS    float64 `json:"scan_speed_mm_s,omitempty"`
}

// DefaultProfileBeamCurrentMA is the beam current SimulateDoseProfile
// assumes when a request gives none.
const DefaultProfileBeamCurrentMA = 5.0

// ParseProfileRequest decodes a dose-profile request strictly, with
// ParseRecipe's rules and error reporting; beam_current_ma is optional.
func ParseProfileRequest(data []byte) (ProfileRequest, error) {
	req := ProfileRequest{TiltDeg: DefaultTiltDeg, TwistDeg: DefaultTwistDeg}
	verr := &process.ValidationError{}
	seen, bad := decodeStrict(data, "", map[string]any{
		"species": &req.Species, "energy_kev": &req.EnergyKeV, "dose_atoms_cm2": &req.DoseAtomsCm2,
		"tilt_deg": &req.TiltDeg, "twist_deg": &req.TwistDeg, "wafer_diameter_mm": &req.WaferDiameterMM,
		"beam_current_ma": &req.BeamCurrentMA, "scan_speed_mm_s": &req.ScanSpeedMMS,
	}, verr)
	for _, f := range []string{"species", "energy_kev", "dose_atoms_cm2"} {
		if !seen[f] && !bad[f] && !bad[""] {
			verr.Add(f, nil, allowedFor(f), "required field missing")
			bad[f] = true
		}
	}
	if !bad[""] {
		for _, fe := range req.recipe().validate().Fields {
			if !bad[fe.Field] {
				verr.Fields = append(verr.Fields, fe)
			}
		}
	}
	if err := verr.Err(); err != nil {
		return ProfileRequest{}, err
	}
	return req, nil
}

// recipe returns the request as a recipe, with defaults for the optional
// machine settings.
func (req ProfileRequest) recipe() Recipe {
	r := Recipe{
		Species: req.Species, EnergyKeV: req.EnergyKeV, DoseAtomsCm2: req.DoseAtomsCm2,
		TiltDeg: req.TiltDeg, TwistDeg: req.TwistDeg,
		WaferDiameterMM: req.WaferDiameterMM, BeamCurrentMA: req.BeamCurrentMA, ScanSpeedMMS: req.ScanSpeedMMS,
	}
	if r.WaferDiameterMM == 0 {
		r.WaferDiameterMM = DefaultWaferDiameterMM
	}
	if r.BeamCurrentMA == 0 {
		r.BeamCurrentMA = DefaultProfileBeamCurrentMA
	}
	if r.ScanSpeedMMS == 0 {
		r.ScanSpeedMMS = DefaultScanSpeedMMS
	}
	return r
}

// Profile is the response of POST /api/ion/simulate/dose_profile.
type Profile struct {
	Profile1D Profile1D       `json:"profile_1d"`
	Profile2D DoseMap         `json:"profile_2d"`
	Metadata  ProfileMetadata `json:"metadata"`
}

// ProfileMetadata describes how a Profile was computed.
type ProfileMetadata struct {
	Species                  string            `json:"species"`
	EnergyKeV                float64           `json:"energy_kev"`
	BoronEquivalentEnergyKeV float64           `json:"boron_equivalent_energy_kev,omitempty"`
	DoseAtomsCm2             float64           `json:"dose_atoms_cm2"`
	TiltDeg                  float64           `json:"tilt_deg"`
	TwistDeg                 float64           `json:"twist_deg"`
	Model                    string            `json:"model"`
	Skewness                 float64           `json:"skewness"`
	Kurtosis                 float64           `json:"kurtosis"`
	NormalIncidenceRpNm      float64           `json:"normal_incidence_rp_nm"`
	LateralStraggleNm        float64           `json:"lateral_straggle_nm"`
	PeakConcentrationCm3     float64           `json:"peak_concentration_cm3"`
	PeakDepthNm              float64           `json:"peak_depth_nm"`
	ChannelingCriticalDeg    float64           `json:"channeling_critical_angle_deg"`
	ChannelingNote           string            `json:"channeling_note"`
	MeanDoseAtomsCm2         float64           `json:"mean_dose_atoms_cm2"`
	UniformityPct            float64           `json:"uniformity_pct"`
	Passes                   int               `json:"passes"`
	ImplantTimeS             float64           `json:"implant_time_s"`
	BeamCurrentMA            float64           `json:"beam_current_ma"`
	WaferDiameterMM          float64           `json:"wafer_diameter_mm"`
	Grid2D                   string            `json:"grid_2d"`
	Units                    map[string]string `json:"units"`
	Sources                  []string          `json:"sources"`
}

var profileUnits = map[string]string{
	"depth_nm": "nm", "concentration_cm3": "cm^-3", "projected_range_nm": "nm", "straggle_nm": "nm",
	"x_mm": "mm", "y_mm": "mm", "dose_atoms_cm2": "cm^-2", "uniformity_pct": "% (1 sigma)",
	"energy_kev": "keV", "implant_time_s": "s", "beam_current_ma": "mA",
}

var profileSources = []string{
	"Range moments: LSS transport equations for the first four moments (Winterbon, Sigmund & Sanders 1970) with ZBL universal nuclear and Lindhard-Scharff electronic stopping (Ziegler, Biersack & Littmark 1985; Lindhard & Scharff 1961); boron k/k_L = 1.65 fitted to Gibbons, Johnson & Mylroie (1975) Rp at 100 keV",
	"Profile shape: Pearson IV/VI/I as in Stanford SUPREM-IV (imp_prson.c)",
	"BF2: boron at E*11/49",
	"Dose: Q = integral(I dt)/(n q A), hybrid scan with dose servo v ∝ I (physics reference §1.6-1.7)",
}

// SimulateDoseProfile computes the 1-D depth profile and the 2-D wafer dose
// map of an implant on an ideal tool: a noise-free beam at the request's
// current (5 mA by default), the scan servo, the integrator and a profiler-
// corrected sweep with no residual. It returns a *process.ValidationError
// for an invalid request (the same fields and ranges as a Recipe).
func SimulateDoseProfile(req ProfileRequest) (Profile, error) {
	r := req.recipe()
	if err := r.Validate(); err != nil {
		return Profile{}, err
	}
	m0, err := Moments(r.Species, r.EnergyKeV)
	if err != nil {
		return Profile{}, fmt.Errorf("simulate dose profile: %w", err)
	}
	m := Tilted(m0, r.TiltDeg)
	pr, p := depthProfile(m, r.DoseAtomsCm2)

	g := newScanGeom(r.WaferDiameterMM)
	cosT := math.Cos(r.TiltDeg * math.Pi / 180)
	iA := r.BeamCurrentMA * 1e-3
	dc := newDoseController(g, r.DoseAtomsCm2/cosT, iA, r.ScanSpeedMMS, 1)
	passes := dc.passesLeft
	t := 0.0
	const dt = 0.5 // s; deposition is exact for a constant beam at any step
	for !dc.done && t < 1e6 {
		_, on := dc.step(iA, iA, dt)
		t += on * dt
	}
	dm := dc.sc.doseMap(cosT)
	mean, sigma := dm.mapStats()

	peak := 0.0
	for _, c := range pr.ConcentrationCm3 {
		peak = math.Max(peak, c)
	}
	crit := ChannelingAngle(r.Species, r.EnergyKeV)
	note := fmt.Sprintf("amorphous-target moments; channeling tails are not modelled. Tilt %.1f° vs Lindhard ψ1(<110>) ≈ %.1f°", r.TiltDeg, crit)
	if r.TiltDeg < 5 {
		note += ": near-normal incidence into crystalline Si would add a channeled tail"
	}
	md := ProfileMetadata{
		Species: r.Species, EnergyKeV: r.EnergyKeV, DoseAtomsCm2: r.DoseAtomsCm2, TiltDeg: r.TiltDeg, TwistDeg: r.TwistDeg,
		Model: p.Kind(), Skewness: m.Gamma, Kurtosis: p.Beta, NormalIncidenceRpNm: m0.RpNm, LateralStraggleNm: m.LateralNm,
		PeakConcentrationCm3: peak, PeakDepthNm: math.Max(0, p.Mode()),
		ChannelingCriticalDeg: crit, ChannelingNote: note,
		MeanDoseAtomsCm2: mean, UniformityPct: sigma, Passes: passes, ImplantTimeS: t,
		BeamCurrentMA: r.BeamCurrentMA, WaferDiameterMM: r.WaferDiameterMM,
		Grid2D: fmt.Sprintf("%d x %d points across the diameter; points outside the wafer are null", mapPoints, mapPoints),
		Units:  profileUnits, Sources: profileSources,
	}
	if r.Species == BoronF2 {
		md.BoronEquivalentEnergyKeV = r.EnergyKeV * species[BoronF2].eScale
	}
	return Profile{Profile1D: pr, Profile2D: dm, Metadata: md}, nil
}
