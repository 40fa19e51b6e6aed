package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/r2r"
)

// R2R adjustment keys the engines read from process.Options.R2R (process/ion
// and process/rtp name the same keys).
const (
	R2RDoseScale  = "dose_setpoint_scale" // ion: dose set-point multiplier, 0.9–1.1
	R2RTempOffset = "temp_offset_c"       // rtp: peak set-point offset, ±25 °C
	R2RHoldOffset = "hold_offset_s"       // rtp: last peak segment lengthened by, ±60 s
)

// R2RLambda is the EWMA weight of every run-to-run thread (physics §5.5;
// the engines' own one-run recommendations use the same).
const R2RLambda = 0.3

// R2RHistory is how many of its latest source runs a thread lists.
const R2RHistory = 10

// loop is one controlled variable of a recipe class: the adjustment key,
// how a completed run's observations give the measurement, and the EWMA
// controller it starts from.
type loop struct {
	key     string
	measure func(obs map[string]float64, applied float64, rc recipeClass) (y float64, ok bool)
	// unset is the correction an engine applies when the key is absent.
	unset float64
	new   func() r2r.EWMA
}

func ewma(target, lo, hi float64) func() r2r.EWMA {
	return func() r2r.EWMA {
		e := r2r.NewEWMA(R2RLambda, target)
		e.Min, e.Max = lo, hi
		e.Applied = e.Recommend()
		return e
	}
}

// loops by process kind. Each models y = a + u (unit gain) in the units of
// its adjustment:
//
//   - ion, dose_setpoint_scale: y = delivered/asked dose = 1 +
//     dose_error_pct/100 (dose_error_pct is against the recipe's dose, not
//     the scaled set-point); target 1, clamp 0.9–1.1.
//   - rtp, hold_offset_s: y = t_eff_error_s, the effective time at the
//     recipe's nominal peak minus the nominal recipe's (the engine measures
//     it with the hold offset applied); target 0, clamp ±60 s.
//   - rtp, temp_offset_c: y = temp_error_c + the offset applied, i.e. the
//     final temperature against the recipe's nominal target; target 0, clamp
//     ±25 °C. Only for recipes whose last segment is at their peak: then
//     temp_error_c is the error of the peak hold the offset moves. A recipe
//     that ends with a cool-down measures temp_error_c at the cool-down
//     target, which the peak offset does not move; its peak is corrected
//     through the hold time (thermal budget) alone.
var loops = map[process.Kind][]loop{
	process.KindIon: {{key: R2RDoseScale, unset: 1, new: ewma(1, 0.9, 1.1),
		measure: func(obs map[string]float64, _ float64, _ recipeClass) (float64, bool) {
			e, ok := obs["dose_error_pct"]
			return 1 + e/100, ok
		}}},
	process.KindRTP: {
		{key: R2RHoldOffset, new: ewma(0, -60, 60),
			measure: func(obs map[string]float64, _ float64, _ recipeClass) (float64, bool) {
				e, ok := obs["t_eff_error_s"]
				return e, ok
			}},
		{key: R2RTempOffset, new: ewma(0, -25, 25),
			measure: func(obs map[string]float64, applied float64, rc recipeClass) (float64, bool) {
				e, ok := obs["temp_error_c"]
				return e + applied, ok && rc.endsAtPeak
			}},
	},
}

// recipeClass is the thread a recipe belongs to.
type recipeClass struct {
	name       string
	endsAtPeak bool // rtp: the last segment holds the peak target
}

// ionEnergyBuckets are the upper edges (keV) of the ion energy classes.
var ionEnergyBuckets = []float64{5, 10, 20, 50, 100, 200}

// classify returns the recipe class of a recipe: for ion, the species and
// an energy bucket (ion/P/20-50keV); for RTP, the peak target rounded to
// 25 °C (rtp/1000C). Runs of one tool and class share an R2R thread.
func classify(kind process.Kind, recipe json.RawMessage) (recipeClass, error) {
	switch kind {
	case process.KindIon:
		var r struct {
			Species string  `json:"species"`
			Energy  float64 `json:"energy_kev"`
		}
		if err := json.Unmarshal(recipe, &r); err != nil {
			return recipeClass{}, fmt.Errorf("classify ion recipe: %w", err)
		}
		lo := 0.0
		for _, hi := range ionEnergyBuckets {
			if r.Energy < hi || hi == ionEnergyBuckets[len(ionEnergyBuckets)-1] {
				return recipeClass{name: fmt.Sprintf("ion/%s/%g-%gkeV", r.Species, lo, hi)}, nil
			}
			lo = hi
		}
	case process.KindRTP:
		var r struct {
			Segments []struct {
				Target float64 `json:"target_temp_c"`
			} `json:"segments"`
		}
		if err := json.Unmarshal(recipe, &r); err != nil {
			return recipeClass{}, fmt.Errorf("classify rtp recipe: %w", err)
		}
		if len(r.Segments) == 0 {
			return recipeClass{}, fmt.Errorf("classify rtp recipe: no segments")
		}
		peak := math.Inf(-1)
		for _, s := range r.Segments {
			peak = max(peak, s.Target)
		}
		return recipeClass{name: fmt.Sprintf("rtp/%gC", math.Round(peak/25)*25),
			endsAtPeak: r.Segments[len(r.Segments)-1].Target == peak}, nil
	}
	return recipeClass{}, fmt.Errorf("classify: unknown kind %q", kind)
}

// R2RSource is a run a thread learnt from.
type R2RSource struct {
	RunID    string             `json:"run_id"`
	JobID    string             `json:"job_id"`
	Position uint64             `json:"position"`
	Applied  map[string]float64 `json:"applied"`
	Measured map[string]float64 `json:"measured"`
}

// R2RThread is the run-to-run state of one tool and recipe class in one
// organisation: an EWMA controller per adjustment, and the runs it learnt
// from.
type R2RThread struct {
	OrgID       string              `json:"org_id"`
	Kind        string              `json:"kind"`
	ToolID      string              `json:"tool_id"`
	RecipeClass string              `json:"recipe_class"`
	Controllers map[string]r2r.EWMA `json:"controllers"`
	Updates     int                 `json:"updates"`
	LearnedFrom []R2RSource         `json:"learned_from"` // the latest R2RHistory, oldest first
	Position    uint64              `json:"position"`
	Recommended map[string]float64  `json:"recommended,omitempty"` // filled in by Threads
}

func threadKey(orgID string, kind process.Kind, toolID, class string) string {
	return orgID + "\x00" + string(kind) + "\x00" + toolID + "\x00" + class
}

// r2rRun is what the model keeps of a run until it completes.
type r2rRun struct {
	OrgID   string             `json:"org_id"`
	Kind    process.Kind       `json:"kind"`
	ToolID  string             `json:"tool_id"`
	Class   string             `json:"class"`
	AtPeak  bool               `json:"ends_at_peak,omitempty"`
	Applied map[string]float64 `json:"applied,omitempty"` // of the latest attempt
}

// R2RState is the run-to-run read model: per organisation, tool and recipe
// class, EWMA controllers (process/r2r) fed with each completed run's
// observations and the adjustments that run was processed with (from its
// RunStarted). It is the actors' R2R source: a run asks it for its
// adjustments when it starts and records them, with their basis, in its
// RunStarted, so the run's own stream explains its set-points.
type R2RState struct {
	mu      sync.RWMutex
	runs    map[string]*r2rRun
	threads map[string]*R2RThread
	order   []string
	pos     uint64

	// sync, when set, brings the model up to the log's head before an
	// Adjustments answers (see SetSync).
	sync        func(ctx context.Context) error
	syncTimeout time.Duration
}

var _ Projection = (*R2RState)(nil)

// NewR2RState returns an empty run-to-run model.
func NewR2RState() *R2RState {
	s := &R2RState{syncTimeout: 2 * time.Second}
	s.Reset()
	return s
}

// SetSync makes Adjustments wait, at most timeout, for sync (typically: the
// runner reaching the store's head position), so a run that starts right
// after another completed learns from it. When the wait fails the answer
// uses the model as it is and its basis says "synced": false. Call before
// use.
func (s *R2RState) SetSync(timeout time.Duration, sync func(ctx context.Context) error) {
	s.sync, s.syncTimeout = sync, timeout
}

// Name implements Projection.
func (s *R2RState) Name() string { return "r2r" }

// Reset implements Projection.
func (s *R2RState) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs, s.threads, s.order, s.pos = map[string]*r2rRun{}, map[string]*R2RThread{}, nil, 0
}

type r2rSnapshot struct {
	Runs     map[string]*r2rRun `json:"runs"`
	Threads  []*R2RThread       `json:"threads"`
	Position uint64             `json:"position"`
}

// Snapshot implements Projection.
func (s *R2RState) Snapshot() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap := r2rSnapshot{Runs: s.runs, Position: s.pos}
	for _, k := range s.order {
		snap.Threads = append(snap.Threads, s.threads[k])
	}
	return json.Marshal(snap)
}

// Restore implements Projection.
func (s *R2RState) Restore(data []byte) error {
	var snap r2rSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("restore r2r: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs, s.threads, s.order, s.pos = snap.Runs, map[string]*R2RThread{}, nil, snap.Position
	if s.runs == nil {
		s.runs = map[string]*r2rRun{}
	}
	for _, t := range snap.Threads {
		k := threadKey(t.OrgID, process.Kind(t.Kind), t.ToolID, t.RecipeClass)
		s.threads[k] = t
		s.order = append(s.order, k)
	}
	return nil
}

// Apply implements Projection.
func (s *R2RState) Apply(rec events.Record) error {
	if events.Category(rec.Stream) != events.CategoryRun {
		return nil
	}
	switch events.BaseType(rec.Type) {
	case events.TypeRunRequested, events.TypeRunStarted, events.TypeRunCompleted:
	default:
		return nil
	}
	p, err := events.Decode(rec)
	if err != nil {
		return err
	}
	runID := events.StreamID(rec.Stream)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pos = rec.Position
	switch e := p.(type) {
	case *events.RunRequested:
		if _, dup := s.runs[runID]; dup {
			return nil
		}
		rc, err := classify(e.Kind, e.Recipe)
		if err != nil {
			return nil //nolint:nilerr // a recipe we cannot classify has no thread
		}
		s.runs[runID] = &r2rRun{OrgID: rec.Metadata.OrgID, Kind: e.Kind, ToolID: e.ToolID, Class: rc.name, AtPeak: rc.endsAtPeak}
	case *events.RunStarted:
		if r, ok := s.runs[runID]; ok {
			r.Applied = e.R2R
		}
	case *events.RunCompleted:
		r, ok := s.runs[runID]
		if !ok {
			return nil
		}
		s.learn(runID, r, e, rec.Position)
	}
	return nil
}

// learn folds a completed run into its thread; call with mu held.
func (s *R2RState) learn(runID string, r *r2rRun, e *events.RunCompleted, pos uint64) {
	rc := recipeClass{name: r.Class, endsAtPeak: r.AtPeak}
	k := threadKey(r.OrgID, r.Kind, r.ToolID, r.Class)
	t := s.threads[k]
	src := R2RSource{RunID: runID, JobID: e.JobID, Position: pos, Applied: map[string]float64{}, Measured: map[string]float64{}}
	for _, l := range loops[r.Kind] {
		applied, ok := r.Applied[l.key]
		if !ok {
			applied = l.unset
		}
		y, ok := l.measure(e.R2R, applied, rc)
		if !ok || math.IsNaN(y) || math.IsInf(y, 0) {
			continue
		}
		if t == nil {
			t = &R2RThread{OrgID: r.OrgID, Kind: string(r.Kind), ToolID: r.ToolID, RecipeClass: r.Class,
				Controllers: map[string]r2r.EWMA{}, LearnedFrom: []R2RSource{}}
			s.threads[k] = t
			s.order = append(s.order, k)
		}
		c, ok := t.Controllers[l.key]
		if !ok {
			c = l.new()
		}
		t.Controllers[l.key] = c.UpdateApplied(y, applied)
		src.Applied[l.key], src.Measured[l.key] = applied, y
	}
	if t == nil || len(src.Measured) == 0 {
		return
	}
	t.Updates++
	t.Position = pos
	t.LearnedFrom = append(t.LearnedFrom, src)
	if n := len(t.LearnedFrom); n > R2RHistory {
		t.LearnedFrom = slices.Clone(t.LearnedFrom[n-R2RHistory:])
	}
}

// Adjustments returns the run-to-run adjustments for a new run of kind on
// toolID in orgID with recipe, and their basis: the tool, the recipe
// class, the thread's EWMA state and the runs it learnt from. A recipe
// class with no history yet gets no adjustments (the engines' defaults)
// and a basis that says so. It implements actors.R2R; it returns an error
// only for a recipe it cannot classify.
func (s *R2RState) Adjustments(ctx context.Context, orgID string, kind process.Kind, toolID string, recipe json.RawMessage) (map[string]float64, map[string]any, error) {
	rc, err := classify(kind, recipe)
	if err != nil {
		return nil, nil, err
	}
	synced := true
	if s.sync != nil {
		sctx, cancel := context.WithTimeout(ctx, s.syncTimeout)
		synced = s.sync(sctx) == nil
		cancel()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	basis := map[string]any{
		"source":       "r2r projection (EWMA, physics §5.5)",
		"tool_id":      toolID,
		"recipe_class": rc.name,
		"position":     s.pos,
		"synced":       synced,
	}
	t, ok := s.threads[threadKey(orgID, kind, toolID, rc.name)]
	if !ok {
		basis["updates"] = 0
		basis["learned_from"] = []string{}
		return nil, basis, nil
	}
	adj := map[string]float64{}
	state := map[string]any{}
	for _, l := range loops[kind] {
		c, ok := t.Controllers[l.key]
		if !ok {
			continue
		}
		adj[l.key] = c.Recommend()
		state[l.key] = c
	}
	runs := make([]string, len(t.LearnedFrom))
	for i, src := range t.LearnedFrom {
		runs[i] = src.RunID
	}
	basis["updates"] = t.Updates
	basis["controllers"] = state
	basis["learned_from"] = runs
	basis["last_learned"] = t.LearnedFrom[len(t.LearnedFrom)-1]
	return adj, basis, nil
}

// R2RFilter selects an organisation's threads. Empty fields match all.
type R2RFilter struct {
	OrgID, Kind, ToolID string
}

// Threads returns the organisation's threads matching f with their current
// recommendations, in the order they were first learnt.
func (s *R2RState) Threads(_ context.Context, f R2RFilter) []R2RThread {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []R2RThread{}
	for _, k := range s.order {
		t := s.threads[k]
		if t.OrgID != f.OrgID || (f.Kind != "" && t.Kind != f.Kind) || (f.ToolID != "" && t.ToolID != f.ToolID) {
			continue
		}
		c := *t
		c.Controllers, c.Recommended = map[string]r2r.EWMA{}, map[string]float64{}
		for key, e := range t.Controllers {
			c.Controllers[key], c.Recommended[key] = e, e.Recommend()
		}
		c.LearnedFrom = slices.Clone(t.LearnedFrom)
		out = append(out, c)
	}
	return out
}
