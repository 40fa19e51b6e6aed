package ion

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/spectra-fab/spectra/process"
)

func mustRecipe(tb testing.TB, body string) Recipe {
	tb.Helper()
	r, err := ParseRecipe([]byte(body))
	if err != nil {
		tb.Fatalf("ParseRecipe: %v", err)
	}
	return r
}

// run steps an engine to the end and returns every step result.
func run(tb testing.TB, r Recipe, opts process.Options) (*Engine, []process.StepResult) {
	tb.Helper()
	e, err := NewEngine(r, opts)
	if err != nil {
		tb.Fatalf("NewEngine: %v", err)
	}
	var out []process.StepResult
	for len(out) < 1e6 {
		res := e.Step()
		out = append(out, res)
		if res.Done {
			return e, out
		}
	}
	tb.Fatal("engine never finished")
	return nil, nil
}

func alarms(steps []process.StepResult, src process.AlarmSource) []process.Alarm {
	var out []process.Alarm
	for _, s := range steps {
		for _, a := range s.Alarms {
			if a.Source == src {
				out = append(out, a)
			}
		}
	}
	return out
}

func TestEngineSeedExample(t *testing.T) {
	r := mustRecipe(t, seedRecipe)
	e, steps := run(t, r, process.Options{Seed: 42})
	last := steps[len(steps)-1]
	if last.Fault != nil || !last.Done || last.Progress != 80 {
		t.Fatalf("last step = %+v, want done at 80 %% without fault", last)
	}
	o := e.Finish()
	res := o.Result.(*Result)
	final := res.FinalDoseAtomsCm2
	if relErr(final, 1e15) > 0.005 {
		t.Errorf("final_dose_atoms_cm2 = %.5g, want 1e15 ±0.5 %%", final)
	}
	if de := res.DoseErrorPct; math.Abs(de-100*(final/1e15-1)) > 1e-9 {
		t.Errorf("dose_error_pct = %v, inconsistent with the final dose %v", de, final)
	}
	vm := res.VMPrediction
	// physics reference §2.3/§7.10: P 40 keV 1e15 on N_B = 1e15, fully active
	// after anneal: Rs ≈ 86–93 Ω/sq (±25 % for a model, §0); xj 169 nm for
	// the as-implanted σ and up to 426 nm for σ = 80 nm (±30 %).
	if rs := *vm.SheetResistanceOhmSq; rs < 86*0.75 || rs > 93*1.25 {
		t.Errorf("VM sheet resistance = %.1f Ω/sq, want 86–93 ±25 %%", rs)
	}
	if xj := *vm.JunctionDepthUm; xj < 0.169*0.7 || xj > 0.426*1.3 {
		t.Errorf("VM junction depth = %.3f µm, want 0.169–0.426 ±30 %%", xj)
	}
	if act := *vm.ActivationPct; act < 90 || act > 100 {
		t.Errorf("VM activation = %.1f %%, want 90–100 after 1000 °C 10 s", act)
	}
	if u := res.DoseNonUniformityPct; u <= 0 || u > 0.5 {
		t.Errorf("dose_nonuniformity_1sigma_pct = %.3f, want within the 0.5 %% 1σ spec (physics reference §1.7)", u)
	}
	// The seed's convention: percent uniform, 100 − 1σ.
	if u := res.DoseUniformityPct; math.Abs(u-(100-res.DoseNonUniformityPct)) > 1e-12 || u < 99.5 {
		t.Errorf("dose_uniformity_pct = %.3f with 1σ %.3f %%, want 100 − 1σ ≥ 99.5", u, res.DoseNonUniformityPct)
	}
	if _, err := json.Marshal(o.Result); err != nil {
		t.Errorf("json.Marshal(Result) = %v", err)
	}
	for _, k := range []string{"dose_error_pct", "mean_beam_current_ma", "dose_uniformity_pct"} {
		if _, ok := o.R2R.Values()[k]; !ok {
			t.Errorf("R2R observations lack %q", k)
		}
	}
	// Steps: progress climbs from 20 to 80 with the dose, one sample each.
	prev := 20.0
	for i, s := range steps {
		if s.N != i || math.Abs(s.TimeS-0.1*float64(i+1)) > 1e-9 || s.Progress < prev || s.Progress > 80 {
			t.Fatalf("step %d = N %d, t %v, progress %v (previous %v)", i, s.N, s.TimeS, s.Progress, prev)
		}
		prev = s.Progress
		for _, f := range TelemetryFields {
			if _, ok := s.Sample[f]; !ok || len(s.Sample) != len(TelemetryFields) {
				t.Fatalf("step %d sample %v: want exactly %v", i, s.Sample, TelemetryFields)
			}
		}
	}
	if got := steps[len(steps)/4].StepName; got[:12] != "Implanting (" {
		t.Errorf("StepName = %q, want Implanting (N%% dose)", got)
	}
	if a := steps[0].Sample[FieldAnalyzer]; math.Abs(a-40000) > 5 {
		t.Errorf("analyzer_field_v = %v, want ≈ 40000 (40 keV, 1+)", a)
	}
	if got := e.SetupMarks(); !slices.Equal(got, []process.Mark{{Name: "Validation", Progress: 5}, {Name: "Simulator set-up", Progress: 10}, {Name: "Controller set-up", Progress: 15}}) {
		t.Errorf("SetupMarks() = %v", got)
	}
	if got := e.FinishMarks(); len(got) != 4 || got[0].Progress != 80 || got[3].Progress != 95 {
		t.Errorf("FinishMarks() = %v", got)
	}
	if again := e.Step(); again.N != last.N || !again.Done {
		t.Errorf("Step after Done = %+v, want the last result again", again)
	}
}

func TestEngineArtifacts(t *testing.T) {
	e, steps := run(t, mustRecipe(t, seedRecipe), process.Options{Seed: 7})
	o := e.Finish()
	names := map[string]process.Artifact{}
	for _, a := range o.Artifacts {
		names[a.Name] = a
	}
	var tel map[string][]float64
	if err := json.Unmarshal(names[ArtifactTelemetry].Data, &tel); err != nil {
		t.Fatalf("telemetry artifact: %v", err)
	}
	for _, f := range TelemetryFields {
		if len(tel[f]) != len(steps) {
			t.Errorf("telemetry %s has %d samples, want %d", f, len(tel[f]), len(steps))
		}
	}
	if len(tel) != len(TelemetryFields) {
		t.Errorf("telemetry keys = %d, want %d", len(tel), len(TelemetryFields))
	}
	var dm DoseMap
	if err := json.Unmarshal(names[ArtifactDoseMap].Data, &dm); err != nil {
		t.Fatalf("dose map artifact: %v", err)
	}
	if mean, _ := dm.mapStats(); relErr(mean, 1e15) > 0.01 {
		t.Errorf("dose map mean = %.4g, want 1e15 ±1 %%", mean)
	}
	svg := names[ArtifactChart]
	if svg.ContentType != "image/svg+xml" {
		t.Errorf("chart content type %q", svg.ContentType)
	}
	d := xml.NewDecoder(bytes.NewReader(svg.Data))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not valid XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("chart root element = %q, want svg", root)
	}
}

func TestEngineDeterminism(t *testing.T) {
	r := mustRecipe(t, seedRecipe)
	_, a := run(t, r, process.Options{Seed: 1})
	_, b := run(t, r, process.Options{Seed: 1})
	_, c := run(t, r, process.Options{Seed: 2})
	if len(a) != len(b) {
		t.Fatalf("same seed: %d and %d steps", len(a), len(b))
	}
	for i := range a {
		for _, f := range TelemetryFields {
			if a[i].Sample[f] != b[i].Sample[f] {
				t.Fatalf("same seed, step %d %s: %v vs %v", i, f, a[i].Sample[f], b[i].Sample[f])
			}
		}
	}
	same := 0
	for i := range min(len(a), len(c)) {
		if a[i].Sample[FieldBeamCurrent] == c[i].Sample[FieldBeamCurrent] {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 1 and 2 share %d beam-current samples, want different noise", same)
	}
}

func TestEngineImplantTimeScalesAsDoseOverCurrent(t *testing.T) {
	base := mustRecipe(t, seedRecipe)
	timeOf := func(dose, current float64) float64 {
		r := base
		r.DoseAtomsCm2, r.BeamCurrentMA = dose, current
		e, _ := run(t, r, process.Options{Seed: 3})
		return e.Finish().Result.(*Result).ImplantTimeS
	}
	t0 := timeOf(1e15, 5)
	// physics reference §1.6: Q·q·A/I, with A the scanned area W×L.
	g := newScanGeom(300)
	want := 1e15 / math.Cos(7*math.Pi/180) * elementaryCharge * g.scannedAreaCm2() / 5e-3
	if relErr(t0, want) > 0.02 {
		t.Errorf("implant time = %.2f s, want Q·q·A/I = %.2f s", t0, want)
	}
	for _, tc := range []struct{ dose, current, ratio float64 }{{2e15, 5, 2}, {1e15, 10, 0.5}, {4e15, 2.5, 8}, {1e14, 0.5, 1}} {
		if got := timeOf(tc.dose, tc.current) / t0; relErr(got, tc.ratio) > 0.03 {
			t.Errorf("time(%g, %g mA)/time(1e15, 5 mA) = %.3f, want %.3f", tc.dose, tc.current, got, tc.ratio)
		}
	}
}

func TestEngineFDC(t *testing.T) {
	r := mustRecipe(t, seedRecipe)
	for seed := int64(1); seed <= 20; seed++ {
		_, steps := run(t, r, process.Options{Seed: seed})
		if a := append(alarms(steps, process.SourceFDC), alarms(steps, process.SourceSPC)...); len(a) > 0 {
			t.Errorf("stable beam, seed %d: alarms %v, want none", seed, a)
		}
	}
	for _, tc := range []struct {
		d    process.Disturbance
		rule string
	}{
		{process.Disturbance{DriftPctPerMin: -2, StartS: 10}, process.RuleBeamDrift},
		{process.Disturbance{DriftPctPerMin: 3, StartS: 5}, process.RuleBeamDrift},
		{process.Disturbance{OffsetPct: -1, StartS: 20}, process.RuleBeamStep},
	} {
		for seed := int64(1); seed <= 5; seed++ {
			_, steps := run(t, r, process.Options{Seed: seed, Disturbance: &tc.d})
			all := append(alarms(steps, process.SourceFDC), alarms(steps, process.SourceSPC)...)
			if len(all) == 0 {
				t.Errorf("disturbance %+v, seed %d: no alarm", tc.d, seed)
				continue
			}
			if all[0].Rule != tc.rule || all[0].Parameter != FieldBeamCurrent || all[0].TimeS < tc.d.StartS {
				t.Errorf("disturbance %+v, seed %d: first alarm %+v, want %s on beam_current_ma after %v s", tc.d, seed, all[0], tc.rule, tc.d.StartS)
			}
		}
	}
	// The recipe's simulate_disturbance is the run actor's to pass on
	// (Options); the engine does not apply it by itself.
	r2 := r
	r2.SimulateDisturbance = &process.Disturbance{OffsetPct: 2}
	if _, steps := run(t, r2, process.Options{Seed: 1}); len(alarms(steps, process.SourceFDC)) != 0 {
		t.Error("recipe simulate_disturbance without Options: FDC alarm, want the engine to ignore it")
	}
}

func TestEngineFaults(t *testing.T) {
	r := mustRecipe(t, seedRecipe)
	tests := []struct {
		name    string
		fault   process.Fault
		attempt int
		fires   bool
	}{
		{"transient_first_attempt", process.Fault{Kind: process.FaultTransient, AtProgress: 50}, 0, true},
		{"transient_retry", process.Fault{Kind: process.FaultTransient, AtProgress: 50}, 1, false},
		{"permanent_retry", process.Fault{Kind: process.FaultPermanent, AtProgress: 30}, 2, true},
		{"interlock", process.Fault{Kind: process.FaultInterlock, AtProgress: 75}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, steps := run(t, r, process.Options{Seed: 1, Fault: &tc.fault, Attempt: tc.attempt})
			last := steps[len(steps)-1]
			if !tc.fires {
				if last.Fault != nil {
					t.Errorf("fault %+v on attempt %d fired: %+v", tc.fault, tc.attempt, last.Fault)
				}
				return
			}
			if last.Fault == nil || last.Fault.Kind != tc.fault.Kind || last.Progress < tc.fault.AtProgress || last.Progress > tc.fault.AtProgress+1 {
				t.Fatalf("last step %+v, want %s fault at %v %%", last, tc.fault.Kind, tc.fault.AtProgress)
			}
			if _, err := json.Marshal(e.Finish().Result); err != nil {
				t.Errorf("Finish after a fault: %v", err)
			}
		})
	}
}

func TestEngineDeadBeamFails(t *testing.T) {
	r := mustRecipe(t, seedRecipe)
	_, steps := run(t, r, process.Options{Seed: 1, Disturbance: &process.Disturbance{OffsetPct: -100, StartS: 10}})
	last := steps[len(steps)-1]
	if last.Fault == nil || last.Fault.Kind != process.FaultPermanent {
		t.Fatalf("dead beam: last step %+v, want a permanent fault", last)
	}
	if last.TimeS > 10+deadBeamS+1 {
		t.Errorf("dead beam failed at %v s, want by %v s", last.TimeS, 10+deadBeamS+1)
	}
	// A beam at 60 % can still implant: slower, but the dose is reached.
	_, steps = run(t, r, process.Options{Seed: 1, Disturbance: &process.Disturbance{OffsetPct: -40}})
	if last := steps[len(steps)-1]; last.Fault != nil {
		t.Errorf("beam at 60 %%: fault %+v, want completion", last.Fault)
	}
}

func TestEngineR2R(t *testing.T) {
	r := mustRecipe(t, seedRecipe)
	e, _ := run(t, r, process.Options{Seed: 5, R2R: map[string]float64{"dose_setpoint_scale": 1.02}})
	res := e.Finish().Result.(*Result)
	if got := res.IntegratedDoseAtomsCm2; relErr(got, 1.02e15) > 1e-6 {
		t.Errorf("integrated dose with scale 1.02 = %.6g, want 1.02e15", got)
	}
	// Over-dosed by ≈2 %, the EWMA (λ = 0.3) trims the next run by 0.3 × 2 %.
	next := res.R2RRecommendation.DoseSetpointScale
	y := res.FinalDoseAtomsCm2 / 1e15
	if want := 1.02 - r2rLambda*(y-1); math.Abs(next-want) > 1e-9 {
		t.Errorf("r2r recommendation = %.5f, want %.5f", next, want)
	}
	_, err := NewEngine(r, process.Options{R2R: map[string]float64{"dose_setpoint_scale": 1.5}})
	var verr *process.ValidationError
	if !errors.As(err, &verr) || verr.Fields[0].Field != "r2r.dose_setpoint_scale" {
		t.Errorf("NewEngine(scale 1.5) = %v, want a ValidationError", err)
	}
	if _, err := NewEngine(Recipe{}, process.Options{}); !errors.As(err, &verr) {
		t.Errorf("NewEngine(empty recipe) = %v, want a ValidationError", err)
	}
}

func TestEngineAllSpecies(t *testing.T) {
	for _, sp := range Species {
		r := mustRecipe(t, seedRecipe)
		r.Species, r.EnergyKeV, r.DoseAtomsCm2, r.BeamCurrentMA = sp, 80, 5e14, 10
		e, steps := run(t, r, process.Options{Seed: 9})
		if f := steps[len(steps)-1].Fault; f != nil {
			t.Errorf("%s: fault %+v", sp, f)
			continue
		}
		o := e.Finish()
		if de := o.Result.(*Result).DoseErrorPct; math.Abs(de) > 0.5 {
			t.Errorf("%s: dose error %.3f %%, want within 0.5 %%", sp, de)
		}
		if _, err := json.Marshal(o.Result); err != nil {
			t.Errorf("%s: %v", sp, err)
		}
	}
}

func BenchmarkEngineRun(b *testing.B) {
	r := mustRecipe(b, seedRecipe)
	steps := 0
	for i := 0; b.Loop(); i++ {
		e, err := NewEngine(r, process.Options{Seed: int64(i)})
		if err != nil {
			b.Fatal(err)
		}
		for {
			steps++
			if e.Step().Done {
				break
			}
		}
		e.Finish()
	}
	b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "steps/s")
}

func BenchmarkSimulateDoseProfile(b *testing.B) {
	req := ProfileRequest{Species: "B", EnergyKeV: 20, DoseAtomsCm2: 5e14, TiltDeg: 7}
	for b.Loop() {
		if _, err := SimulateDoseProfile(req); err != nil {
			b.Fatal(err)
		}
	}
}

// A dose below what one pass paints at the maximum scan speed (5e13 at
// 5 mA: one pass at 100 mm/s is 7.8e13) used to end part-way across the
// wafer, the integrator gating the beam mid-pass: 45–70 % uniform and
// 10–13 % over-dosed on the wafer. The engine now lowers the beam current
// to what a whole pass allows, says so, and the wafer is uniform.
func TestEngineLowDoseLowersTheBeam(t *testing.T) {
	r := mustRecipe(t, seedRecipe)
	r.DoseAtomsCm2 = 5e13
	for seed := range int64(10) {
		e, _ := run(t, r, process.Options{Seed: seed})
		res := e.Finish().Result.(*Result)
		if res.DoseUniformityPct < 99 || math.Abs(res.DoseErrorPct) > 1 {
			t.Errorf("seed %d: 5e13 at 5 mA: %.2f %% uniform, dose error %.2f %%, want ≥ 99 and ≤ 1", seed, res.DoseUniformityPct, res.DoseErrorPct)
		}
		if !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "beam current lowered from 5 mA") }) {
			t.Errorf("seed %d: warnings %q, want the lowered beam current", seed, res.Warnings)
		}
		if res.MeanBeamCurrentMA > 4.2 {
			t.Errorf("seed %d: mean beam current %.3f mA, want ≤ 4.1 (0.8 of the 100 mm/s pass)", seed, res.MeanBeamCurrentMA)
		}
	}
}

// The artifacts are written without reflection; they must read as
// json.Marshal and fmt wrote them, byte for byte.
func TestArtifactsRenderAsMarshalWould(t *testing.T) {
	e, _ := run(t, mustRecipe(t, seedRecipe), process.Options{Seed: 3})
	dm := e.dc.sc.doseMap(e.cosT)
	dm.XMM = append(dm.XMM, 0, -0.5, 1e-7, -3e-9, 2.5e21, 1e300, 123456789.125)
	dm.DoseAtomsCm2 = append(dm.DoseAtomsCm2, nullRow{math.NaN(), math.Inf(1), 0, 5e14}, nullRow{})
	want, err := json.Marshal(dm)
	if err != nil {
		t.Fatal(err)
	}
	if got := dm.appendJSON(nil); !bytes.Equal(got, want) {
		t.Errorf("DoseMap.appendJSON =\n%.300s…\nwant json.Marshal's\n%.300s…", got, want)
	}
	for _, v := range []float64{0, -0.04, 0.05, 0.15, 1.25, 79.99, 123456.789, math.NaN(), math.Inf(-1)} {
		if got, want := string(appendPoint(nil, v, -v)), fmt.Sprintf("%.1f,%.1f ", v, -v); got != want {
			t.Errorf("appendPoint(%g) = %q, want %q", v, got, want)
		}
	}
}

func BenchmarkArtifacts(b *testing.B) {
	e, _ := run(b, mustRecipe(b, seedRecipe), process.Options{Seed: 3})
	for b.Loop() {
		e.artifacts()
	}
}

// The deposit that reuses the error function at the position where the
// last one stopped leaves every row's fluence bit for bit as computing
// both ends afresh does, through turns, glitches (no beam) and moves of
// every length.
func TestDepositReuseIsExact(t *testing.T) {
	g := newScanGeom(300)
	s := newScanner(g)
	fresh := make([]float64, len(g.rows))
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 5000 {
		iA := 1e-3 * rng.Float64()
		if step%97 == 0 {
			iA = 0 // a glitch: nothing deposited, the wafer moves on
		}
		v := 1 + 99*rng.Float64()
		dist := v * 0.1 * rng.Float64()
		y0 := s.y
		s.move(iA, v, dist)
		// The same deposit, both ends computed.
		if iA > 0 && y0 != s.y {
			lo, hi := min(y0, s.y), max(y0, s.y)
			f := iA / (elementaryCharge * (g.width / 10) * (v / 10))
			k := 1 / (math.Sqrt2 * spotSigmaYMM)
			for j := int(math.Max(0, math.Floor((lo-6*spotSigmaYMM+g.radius)/g.pitch))); j <= int(math.Min(float64(len(fresh)-1), math.Ceil((hi+6*spotSigmaYMM+g.radius)/g.pitch))); j++ {
				fresh[j] += f * (0.5 * (math.Erf((hi-g.rows[j])*k) - math.Erf((lo-g.rows[j])*k)))
			}
		}
		for j := range fresh {
			if math.Float64bits(fresh[j]) != math.Float64bits(s.rows[j]) {
				t.Fatalf("step %d, row %d: %v with reuse, %v computed afresh", step, j, s.rows[j], fresh[j])
			}
		}
	}
}

// Step keeps every sample in the same field order as TelemetryFields.
func TestTelemetryFieldsCount(t *testing.T) {
	if len(TelemetryFields) != numFields {
		t.Fatalf("%d telemetry fields, numFields is %d", len(TelemetryFields), numFields)
	}
}
