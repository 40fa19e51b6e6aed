package rtp

import "github.com/spectra-fab/spectra/process"

// Result is an RTP run's results, under the API's field names
// (docs/results.md gives each one's unit).
type Result struct {
	FinalTempC    float64 `json:"final_temp_c"`
	TempErrorC    float64 `json:"temp_error_c"`
	MaxOvershootC float64 `json:"max_overshoot_c"`
	AvgRampErrorC float64 `json:"avg_ramp_error_c"`
	// SettlingTimeS is −1 when the peak hold never settled within ±1 °C.
	SettlingTimeS float64 `json:"settling_time_s"`
	// ThermalBudget is ∫D dt of ThermalBudgetSpecies, in cm².
	ThermalBudget        float64        `json:"thermal_budget"`
	ThermalBudgetSpecies string         `json:"thermal_budget_species"`
	DiffusionLengthUm    float64        `json:"diffusion_length_um"`
	EffectiveTimeS       float64        `json:"effective_time_s"`
	PeakTempC            float64        `json:"peak_temp_c"`
	VMPrediction         VMResult       `json:"vm_prediction"`
	R2RRecommendation    Recommendation `json:"r2r_recommendation"`
	SPCAlertsCount       int            `json:"spc_alerts_count"`
	Warnings             []string       `json:"warnings"`
}

// VMResult is virtual metrology of the wafer after the run. The implant
// figures are null when the recipe names no implant (or, for the sheet
// resistance, when the layer does not conduct).
type VMResult struct {
	ActivationPct        *float64 `json:"activation_pct"`
	DiffusionDepthUm     *float64 `json:"diffusion_depth_um"`
	SheetResistanceOhmSq *float64 `json:"sheet_resistance_ohm_sq"`
	JunctionDepthUm      *float64 `json:"junction_depth_um"`
	OxideThicknessNm     float64  `json:"oxide_thickness_nm"`
}

// Recommendation is this run's own run-to-run recommendation for the next
// run: the hold-time offset, from the effective-time error it measured.
type Recommendation struct {
	HoldOffsetS float64 `json:"hold_offset_s"`
	TEffErrorS  float64 `json:"t_eff_error_s"`
	Lambda      float64 `json:"lambda"`
}

// Observations are what the run-to-run controller learns from an RTP run.
type Observations struct {
	TempErrorC           float64  `json:"temp_error_c"`
	MaxOvershootC        float64  `json:"max_overshoot_c"`
	AvgRampErrorC        float64  `json:"avg_ramp_error_c"`
	SettlingTimeS        float64  `json:"settling_time_s"`
	FinalTempC           float64  `json:"final_temp_c"`
	PeakTempC            float64  `json:"peak_temp_c"`
	HoldSigmaC           float64  `json:"hold_sigma_c"`
	ThermalBudgetCm2     float64  `json:"thermal_budget_cm2"`
	TEffErrorS           float64  `json:"t_eff_error_s"`
	OxideThicknessNm     float64  `json:"oxide_thickness_nm"`
	SheetResistanceOhmSq *float64 `json:"sheet_resistance_ohm_sq,omitempty"`
	JunctionDepthUm      *float64 `json:"junction_depth_um,omitempty"`
}

var (
	_ process.Result       = (*Result)(nil)
	_ process.Observations = (*Observations)(nil)
)

// Figures implements process.Result.
func (r *Result) Figures() map[string]float64 {
	f := process.Figures{}
	f.Add("final_temp_c", r.FinalTempC).
		Add("temp_error_c", r.TempErrorC).
		Add("max_overshoot_c", r.MaxOvershootC).
		Add("avg_ramp_error_c", r.AvgRampErrorC).
		Add("settling_time_s", r.SettlingTimeS).
		Add("thermal_budget", r.ThermalBudget).
		Add("diffusion_length_um", r.DiffusionLengthUm).
		Add("effective_time_s", r.EffectiveTimeS).
		Add("peak_temp_c", r.PeakTempC).
		Add("oxide_thickness_nm", r.VMPrediction.OxideThicknessNm).
		AddPtr("activation_pct", r.VMPrediction.ActivationPct).
		AddPtr("diffusion_depth_um", r.VMPrediction.DiffusionDepthUm).
		AddPtr("sheet_resistance_ohm_sq", r.VMPrediction.SheetResistanceOhmSq).
		AddPtr("junction_depth_um", r.VMPrediction.JunctionDepthUm)
	return f
}

// Values implements process.Observations.
func (o *Observations) Values() map[string]float64 {
	f := process.Figures{}
	f.Add("temp_error_c", o.TempErrorC).
		Add("max_overshoot_c", o.MaxOvershootC).
		Add("avg_ramp_error_c", o.AvgRampErrorC).
		Add("settling_time_s", o.SettlingTimeS).
		Add("final_temp_c", o.FinalTempC).
		Add("peak_temp_c", o.PeakTempC).
		Add("hold_sigma_c", o.HoldSigmaC).
		Add("thermal_budget_cm2", o.ThermalBudgetCm2).
		Add("t_eff_error_s", o.TEffErrorS).
		Add("oxide_thickness_nm", o.OxideThicknessNm).
		AddPtr("sheet_resistance_ohm_sq", o.SheetResistanceOhmSq).
		AddPtr("junction_depth_um", o.JunctionDepthUm)
	return f
}
