// Package ion simulates ion implantation into silicon: range statistics,
// depth profiles, the wafer dose map, and a hardware-in-the-loop implanter
// that a run actor steps as a process.Engine.
//
// ExampleNewEngine drives a run from recipe to results: ParseRecipe
// (strict JSON and the specification's ranges, else a
// *process.ValidationError), NewEngine, its set-up marks (Validation 5,
// Simulator set-up 10, Controller set-up 15), 100 ms steps while progress
// goes from 20 to 80 with the dose, and Finish (results, R2R observations,
// artifacts). SimulateDoseProfile serves POST
// /api/ion/simulate/dose_profile.
//
// # Range moments
//
// Rp, ΔRp, skewness γ, kurtosis β and the lateral straggle σ_y of B, P, As,
// In and Sb in amorphous Si come from moments_table.go, which
// internal/gentable generates (go generate) with the transport solver of
// process/ion/lss: the linearised Boltzmann equations for the first four
// range moments (Winterbon, Sigmund & Sanders 1970) with the ZBL universal
// nuclear stopping and Lindhard–Scharff electronic stopping (Ziegler,
// Biersack & Littmark 1985; Lindhard & Scharff 1961). Boron's electronic
// stopping is scaled by k/k_L = 1.65, fitted to one point of Gibbons,
// Johnson & Mylroie (Projected Range Statistics, 1975): Rp(B, 100 keV) =
// 299 nm; nothing else is fitted. Against the Gibbons values quoted in the
// physics reference (§1.1) the table is within 11 % on Rp and 8 % on ΔRp
// for all four tabulated ions from 10 to 200 keV (Rp: B +1…+10 %, P
// +5…+9 %, As +2…+6 %, Sb −3…−1 %), and In agrees with the reference's LSS-scaled estimate (§1.4)
// within 4 %. The tables' ΔR⊥ is the transverse straggle √⟨y²+z²⟩ = √2·σ_y.
// Between table energies Rp, ΔRp and σ_y are interpolated log–log and γ, β
// linearly in ln E. BF2 is its boron at E·11/49 (§1.3); its F atoms and the
// surface amorphisation they cause are not modelled.
//
// Tilt θ projects the range ellipsoid on the normal: Rp·cos θ and
// ΔRp²cos²θ + σ_y²sin²θ (§1.5, §1.8). Channeling is not modelled; the
// profile metadata gives Lindhard's critical angle for ⟨110⟩ as a warning.
//
// # Depth profile
//
// The Pearson system as SUPREM-IV implements it (§1.5): type IV when the
// moments allow it, otherwise the bounded type VI/I branch (which the
// Gibbons and our own low kurtosis values need), and the Gaussian at γ = 0,
// β = 3. The profile is normalised numerically so that the dose is retained
// below the surface, on 201 depths from the surface to where the density
// falls below 1e-6 of its peak.
//
// # Scan, dose and the 2-D map
//
// A hybrid-scan implanter (§1.7): a spot beam (σ = 10 mm) swept in x over
// the wafer plus 50 mm overscan each side (W = 40 cm for 300 mm), the wafer
// moved in y through it, 40 mm past the spot at each end. The dose
// integrator sums the pressure-compensated Faraday current into
// Q = ∫I dt/(n·q·W·L) (§1.6; singly charged ions) and gates the beam off the
// moment Q reaches the set-point, target × R2R scale / cos θ (the cosine
// correction of a tilted wafer). The scan servo plans a whole number of
// passes at or below the recipe's scan speed and sets the wafer speed every
// step to v = I/(n·q·W·D_pass), so each pass delivers its share whatever the
// beam does; a trim pass makes up a shortfall. The wafer's dose is kept per
// 2.5 mm row (exact Gaussian-spot deposition) times a residual x profile;
// the 2-D map samples it on 61 × 61 points across the diameter, with null
// for points off the wafer. Uniformity is 1σ in % inside a 3 mm edge
// exclusion (lower is better; the seed's 95 % figures were illustrative).
// SimulateDoseProfile runs the same controller on an ideal tool
// (noise-free beam, no x residual).
//
// # Simulator
//
// Beam current: recipe current with 0.4 % white fluctuation per sample, a
// 0.05 % Ornstein–Uhlenbeck wander (τ 30 s), −0.05 %/min source ageing,
// arc glitches (0.5/min, 0.1–0.3 s with no beam) and the injected
// process.Disturbance. Chamber pressure: 2e-6 Torr base plus resist
// outgassing driven by the beam power on the wafer. Charge exchange makes a
// fraction 1 − exp(−κP) of the beam neutral (implanted, not counted); the
// tool compensates with its own κ (5 % error) and its Faraday has a
// seeded 0.15 % calibration error; the source is tuned until the
// compensated Faraday reads the recipe current. These make the dose error
// (typically 0.1–0.2 %). The telemetry's beam_current_ma is the compensated
// Faraday reading. Analyser: analyzer_field_v is the extraction potential
// the mass-analysing magnet is set for, E/n volts (40000 for 40 keV 1+);
// the magnet field B = √(2mE)/(n·e·ρ) at ρ = 0.5 m is in the result.
// Wafer temperature: m·cp·dT/dt = P_beam·(fraction on the wafer) −
// h·A·(T − 20 °C), h = 0.02 W/cm²/K (§1.9).
//
// # Monitors
//
// The monitors learn their limits from the run itself, never from the
// simulator's constants (docs/monitoring.md). After a 2 s warm-up, ten
// one-second means of the compensated beam current (glitch samples left
// out) and of the chamber pressure fix each chart's centre and σ̂ (mean
// moving range / 1.128). Then a beam jump beyond 6σ̂ raises BEAM_STEP
// (SPC), a CUSUM tuned to a 0.5 % shift (k = δ/2σ̂, h = 5; its centre
// follows in-control seconds over a minute, so slow source ageing is
// absorbed) or a gradual crossing of the limit raises BEAM_DRIFT (FDC), the
// log-pressure beyond 6σ̂ (σ̂ ≥ 0.1) raises PRESSURE_BURST, four beam losses
// within 20 s raise GLITCH_STORM, and a completed pass whose integrated
// dose is more than 1 % off the servo's plan for it raises SCAN_SPEED.
// Each rule fires at most once per run and direction, at most 20 alarms
// per run. A
// wafer above 100 °C raises one FDC warning. A beam below half the recipe
// current for 30 s, or a run not done in three times its planned time,
// ends with a permanent fault ("beam stability check failed"). Injected
// faults (process.Options.Fault) fire when progress reaches their
// percentage, clamped to the implant's 20–80 %; transient ones only on
// attempt 0.
//
// A dose below what one pass paints at 80 % of the 100 mm/s maximum scan
// speed at the recipe's current (5e13 at 5 mA: one pass at 100 mm/s is
// 7.8e13) cannot be painted in whole passes; the engine lowers the beam
// current to what one pass allows and says so in the warnings (before,
// the integrator gated the beam off part-way across the wafer: 43–70 %
// uniform, +10–13 % dose on the wafer).
//
// # Results and virtual metrology
//
// Finish reports, among others, final_dose_atoms_cm2 (the mean dose the
// wafer received, as post-implant metrology would measure it),
// dose_error_pct against the recipe dose, integrated_dose_atoms_cm2 (the
// Faraday's), vm_prediction, dose_uniformity_pct, mean_beam_current_ma,
// r2r_recommendation {dose_setpoint_scale} (one EWMA step, λ = 0.3, §5.5),
// projected_range_nm, straggle_nm and implant_time_s, mean_scan_speed_mm_s
// and the multivariate check's summary (mean_beam_current_dev_pct,
// mean_scan_speed_dev_pct; Engine.Summary); R2R observations
// dose_error_pct, mean_beam_current_ma and dose_uniformity_pct; and the
// artifacts telemetry.json, dose_map.json and beam_dose_chart.svg.
//
// The VM predicts from the Faraday dose (a VM model cannot see the true
// one) after a standard 1000 °C, 10 s RTA into 1e15 cm⁻³ of the opposite
// type: the profile is broadened by √(2Dt) (silicon.Diffusivity; transient
// enhanced diffusion ignored), silicon.Activation of it is active, capped at
// silicon.ActiveLimit; Rs integrates it with Masetti mobility
// (silicon.SheetResistance) and xj is where the chemical profile meets the
// background (silicon.JunctionDepth). For the seed's P 40 keV 1e15 this
// gives ≈85 Ω/sq and 0.17 µm, against §2.3's 86–93 Ω/sq and 169 nm.
package ion
