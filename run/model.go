package run

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/rtp"
)

// NewEngine builds the engine of a run of kind from its recipe and
// options: the process packages' ParseRecipe and NewEngine, behind one
// function (actors.Engines adapts to it).
type NewEngine func(kind process.Kind, recipe json.RawMessage, opts process.Options) (process.Engine, error)

// Reference recipes: a model version is the fingerprint of one run of
// each, so any change of model parameters or code that alters what an
// engine computes changes the version.
var referenceRecipes = map[process.Kind]json.RawMessage{
	process.KindIon: json.RawMessage(`{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"tilt_deg":7,"twist_deg":0,
		"beam_current_ma":5,"scan_speed_mm_s":50,"wafer_diameter_mm":300}`),
	process.KindRTP: json.RawMessage(`{"segments":[{"target_temp_c":800,"duration_s":5,"ramp_rate_c_s":50},
		{"target_temp_c":1000,"duration_s":10,"ramp_rate_c_s":40},{"target_temp_c":400,"duration_s":5,"ramp_rate_c_s":40}],
		"initial_temp_c":25,"n2_flow_slm":10,"o2_flow_slm":0,"controller_type":"pid","pid_kp":5,"pid_ki":0.5,"pid_kd":1}`),
}

// referenceDisturbance makes the reference run exercise the monitors
// (SPC, FDC, R2R observations) too, not only the nominal path.
var referenceDisturbance = &process.Disturbance{OffsetPct: 1, DriftPctPerMin: 2, StartS: 2}

// referenceSteps caps the reference run (30 minutes of process time).
const referenceSteps = 18000

// Fingerprint returns the model version of the engines newEngine builds
// for kind: "sha256:" and the hex SHA-256 of a reference run (fixed recipe,
// seed, R2R adjustments and disturbance): its set-up marks, every sample,
// alarm and progress of every step, its finishing marks, result,
// observations and artifacts. Two engines with the same fingerprint
// compute the same reference run bit for bit; an engine whose parameters
// or code changed what it computes has another one. It returns an error
// when there is no reference recipe for kind or the engine cannot be built.
func Fingerprint(newEngine NewEngine, kind process.Kind) (string, error) {
	recipe, ok := referenceRecipes[kind]
	if !ok {
		return "", fmt.Errorf("fingerprint %q: %w", kind, ErrUnknownKind)
	}
	eng, err := newEngine(kind, recipe, process.Options{Seed: 20261203,
		R2R: map[string]float64{}, Disturbance: referenceDisturbance})
	if err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", kind, err)
	}
	h := sha256.New()
	put := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(err.Error())
		}
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	put(kind)
	put(eng.SetupMarks())
	for i := 0; i < referenceSteps; i++ {
		res := eng.Step()
		put(stepPrint{N: res.N, TimeS: bits(res.TimeS), Sample: sampleBits(res.Sample), Progress: bits(res.Progress),
			Name: res.StepName, Alarms: res.Alarms, Fault: res.Fault, Done: res.Done})
		if res.Done || res.Fault != nil {
			break
		}
	}
	put(eng.FinishMarks())
	out := eng.Finish()
	put(out.Result)
	put(out.R2R)
	for _, a := range out.Artifacts {
		put(a.Name)
		put(a.ContentType)
		put(a.Data)
	}
	put(eng.SafeState())
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

type stepPrint struct {
	N        int
	TimeS    uint64
	Sample   [][2]any
	Progress uint64
	Name     string
	Alarms   []process.Alarm
	Fault    *process.Fault
	Done     bool
}

func bits(x float64) uint64 { return math.Float64bits(x) }

// sampleBits lists a sample's fields in name order with their values' bit
// patterns: JSON would lose a NaN and round nothing, but be explicit.
func sampleBits(s process.Sample) [][2]any {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2]any, len(keys))
	for i, k := range keys {
		out[i] = [2]any{k, bits(s[k])}
	}
	return out
}

// Engine builds the real engine of a run of kind (process/ion,
// process/rtp). It returns ErrUnknownKind for another kind.
func Engine(kind process.Kind, recipe json.RawMessage, opts process.Options) (process.Engine, error) {
	switch kind {
	case process.KindIon:
		r, err := ion.ParseRecipe(recipe)
		if err != nil {
			return nil, err
		}
		return ion.NewEngine(r, opts)
	case process.KindRTP:
		r, err := rtp.ParseRecipe(recipe)
		if err != nil {
			return nil, err
		}
		return rtp.NewEngine(r, opts)
	}
	return nil, fmt.Errorf("engine %q: %w", kind, ErrUnknownKind)
}

// ModelVersion is the model version a run of kind records in RunStarted:
// the Fingerprint of the real engine (Engine), and after "+" the version
// of the code that built it when the binary knows it (its VCS revision),
// for the reader. It is computed once per kind and process; "" for an
// unknown kind. SameModel compares only the fingerprints: a rebuild that
// changes no result keeps the model.
func ModelVersion(kind process.Kind) string {
	modelMu.Lock()
	defer modelMu.Unlock()
	if v, ok := models[kind]; ok {
		return v
	}
	v, err := Fingerprint(Engine, kind)
	if err != nil {
		v = ""
	} else if rev := codeVersion(); rev != "" {
		v += "+" + rev
	}
	models[kind] = v
	return v
}

// SameModel reports whether two model versions name the same engine
// model: the same fingerprint, whatever the code version beside it.
func SameModel(a, b string) bool { return fingerprintOf(a) == fingerprintOf(b) }

func fingerprintOf(v string) string {
	f, _, _ := strings.Cut(v, "+")
	return f
}

var (
	modelMu sync.Mutex
	models  = map[process.Kind]string{}
)

func codeVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}
