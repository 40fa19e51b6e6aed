package ion

import "github.com/spectra-fab/spectra/process"

// Result is an ion implantation run's results, under the API's field names
// (docs/results.md gives each one's unit).
type Result struct {
	FinalDoseAtomsCm2      float64 `json:"final_dose_atoms_cm2"`
	DoseErrorPct           float64 `json:"dose_error_pct"`
	IntegratedDoseAtomsCm2 float64 `json:"integrated_dose_atoms_cm2"`
	DoseSetpointAtomsCm2   float64 `json:"dose_setpoint_atoms_cm2"`
	// DoseUniformityPct is the dose map's uniformity in the seed's
	// convention, percent uniform: 100 − DoseNonUniformityPct (≈ 99.5 % for
	// a good implant; 95 % is poor).
	DoseUniformityPct float64 `json:"dose_uniformity_pct"`
	// DoseNonUniformityPct is the 1σ non-uniformity of the dose map in
	// percent of its mean (lower is better).
	DoseNonUniformityPct float64       `json:"dose_nonuniformity_1sigma_pct"`
	VMPrediction         VMResult      `json:"vm_prediction"`
	VMAssumptions        VMAssumptions `json:"vm_assumptions"`
	MeanBeamCurrentMA    float64       `json:"mean_beam_current_ma"`
	// MeanScanSpeedMMS is the dose servo's mean slow-scan speed command
	// while the wafer moved: in proportion to the beam current.
	MeanScanSpeedMMS float64 `json:"mean_scan_speed_mm_s"`
	// MeanBeamCurrentDevPct and MeanScanSpeedDevPct are the run's summary
	// vector for the multivariate check (Engine.Summary): the mean beam
	// current against the current the source was tuned for, and the mean
	// speed command against the servo's plan, in %.
	MeanBeamCurrentDevPct   float64 `json:"mean_beam_current_dev_pct"`
	MeanScanSpeedDevPct     float64 `json:"mean_scan_speed_dev_pct"`
	MeanChamberPressureTorr float64 `json:"mean_chamber_pressure_torr"`
	MaxWaferTempC           float64 `json:"max_wafer_temp_c"`
	AnalyzerFieldT          float64 `json:"analyzer_field_t"`
	// R2RRecommendation is the dose trim this run recommends for the next
	// one on its own; R2RApplied the trim it ran with.
	R2RRecommendation DoseTrim `json:"r2r_recommendation"`
	R2RApplied        DoseTrim `json:"r2r_applied"`
	ProjectedRangeNm  float64  `json:"projected_range_nm"`
	StraggleNm        float64  `json:"straggle_nm"`
	ProfileModel      string   `json:"profile_model"`
	ImplantTimeS      float64  `json:"implant_time_s"`
	PlannedImplantS   float64  `json:"planned_implant_time_s"`
	Passes            int      `json:"passes"`
	BeamGlitches      int      `json:"beam_glitches"`
	SPCAlertsCount    int      `json:"spc_alerts_count"`
	FDCAlarmsCount    int      `json:"fdc_alarms_count"`
	Warnings          []string `json:"warnings,omitempty"`
	// Fault is the message of the fault that ended processing, if any.
	Fault string `json:"fault,omitempty"`
}

// VMResult is virtual metrology of the implanted layer after the
// assumed anneal. A figure the model cannot give is null.
type VMResult struct {
	SheetResistanceOhmSq *float64 `json:"sheet_resistance_ohm_sq"`
	JunctionDepthUm      *float64 `json:"junction_depth_um"`
	ActivationPct        *float64 `json:"activation_pct"`
}

// VMAssumptions are what the prediction assumed of the wafer and anneal.
type VMAssumptions struct {
	AnnealTempC    float64 `json:"anneal_temp_c"`
	AnnealTimeS    float64 `json:"anneal_time_s"`
	BackgroundCm3  float64 `json:"background_cm3"`
	BackgroundType string  `json:"background_type"`
}

// DoseTrim is the run-to-run dose set-point multiplier.
type DoseTrim struct {
	DoseSetpointScale float64 `json:"dose_setpoint_scale"`
}

// Observations are what the run-to-run controller learns from an ion run.
type Observations struct {
	DoseErrorPct      float64 `json:"dose_error_pct"`
	MeanBeamCurrentMA float64 `json:"mean_beam_current_ma"`
	DoseUniformityPct float64 `json:"dose_uniformity_pct"` // percent uniform, as Result's
}

var (
	_ process.Result       = (*Result)(nil)
	_ process.Observations = (*Observations)(nil)
)

// Figures implements process.Result.
func (r *Result) Figures() map[string]float64 {
	f := process.Figures{}
	f.Add("final_dose_atoms_cm2", r.FinalDoseAtomsCm2).
		Add("dose_error_pct", r.DoseErrorPct).
		Add("integrated_dose_atoms_cm2", r.IntegratedDoseAtomsCm2).
		Add("dose_setpoint_atoms_cm2", r.DoseSetpointAtomsCm2).
		Add("dose_uniformity_pct", r.DoseUniformityPct).
		Add("dose_nonuniformity_1sigma_pct", r.DoseNonUniformityPct).
		Add("mean_beam_current_ma", r.MeanBeamCurrentMA).
		Add("mean_scan_speed_mm_s", r.MeanScanSpeedMMS).
		Add("mean_beam_current_dev_pct", r.MeanBeamCurrentDevPct).
		Add("mean_scan_speed_dev_pct", r.MeanScanSpeedDevPct).
		Add("mean_chamber_pressure_torr", r.MeanChamberPressureTorr).
		Add("max_wafer_temp_c", r.MaxWaferTempC).
		Add("analyzer_field_t", r.AnalyzerFieldT).
		Add("projected_range_nm", r.ProjectedRangeNm).
		Add("straggle_nm", r.StraggleNm).
		Add("implant_time_s", r.ImplantTimeS).
		Add("planned_implant_time_s", r.PlannedImplantS).
		AddPtr("sheet_resistance_ohm_sq", r.VMPrediction.SheetResistanceOhmSq).
		AddPtr("junction_depth_um", r.VMPrediction.JunctionDepthUm).
		AddPtr("activation_pct", r.VMPrediction.ActivationPct)
	return f
}

// Values implements process.Observations.
func (o *Observations) Values() map[string]float64 {
	f := process.Figures{}
	f.Add("dose_error_pct", o.DoseErrorPct).
		Add("mean_beam_current_ma", o.MeanBeamCurrentMA).
		Add("dose_uniformity_pct", o.DoseUniformityPct)
	return f
}
