package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/r2r"
	"github.com/spectra-fab/spectra/process/rtp"
	"github.com/spectra-fab/spectra/run"
)

// R2R adjustment keys the engines read from process.Options.R2R.
const (
	R2RDoseScale  = ion.R2RDoseScale  // ion: dose set-point multiplier, 0.9–1.1
	R2RTempOffset = rtp.R2RTempOffset // rtp: peak set-point offset, ±25 °C
	R2RHoldOffset = rtp.R2RHoldOffset // rtp: last peak segment lengthened by, ±60 s
)

// R2RLambda is the EWMA weight of every run-to-run thread.
const R2RLambda = r2r.Lambda

// R2RHistory is how many of its latest source runs a thread lists.
const R2RHistory = 10

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
	OrgID  string       `json:"org_id"`
	Kind   process.Kind `json:"kind"`
	ToolID string       `json:"tool_id"`
	Class  string       `json:"class"`
	// Loops are the keys of the kind's loops the recipe's class has.
	Loops []string `json:"loops"`
	// AtPeak is what snapshots before Loops recorded instead (rtp: the
	// temperature loop applies); read only by Restore.
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
	classes recipeClasses

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
	for _, r := range s.runs {
		if r.Loops == nil { // a snapshot from before Loops
			switch r.Kind {
			case process.KindIon:
				r.Loops = []string{R2RDoseScale}
			case process.KindRTP:
				r.Loops = []string{R2RHoldOffset}
				if r.AtPeak {
					r.Loops = append(r.Loops, R2RTempOffset)
				}
			}
			r.AtPeak = false
		}
	}
	for _, t := range snap.Threads {
		k := threadKey(t.OrgID, process.Kind(t.Kind), t.ToolID, t.RecipeClass)
		s.threads[k] = t
		s.order = append(s.order, k)
	}
	return nil
}

// Wants implements Selective: runs' requests, starts and completions.
func (s *R2RState) Wants(category, baseType string) bool {
	switch baseType {
	case events.TypeRunRequested, events.TypeRunStarted, events.TypeRunCompleted:
		return category == events.CategoryRun
	}
	return false
}

// Apply implements Projection.
func (s *R2RState) Apply(rec events.Record) error {
	if !s.Wants(events.Category(rec.Stream), events.BaseType(rec.Type)) {
		return nil
	}
	return s.applyDecoded(rec, decodedOf(rec))
}

// decodes implements decoder.
func (s *R2RState) decodes(_, _ string) bool { return true }

// applyDecoded implements decoder.
func (s *R2RState) applyDecoded(rec events.Record, d *decoded) error {
	p, err := d.p, d.err
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
		rc, err := s.classes.of(e.Kind, e.Recipe)
		if err != nil {
			return nil //nolint:nilerr // a recipe we cannot classify has no thread
		}
		s.runs[runID] = &r2rRun{OrgID: rec.Metadata.OrgID, Kind: e.Kind, ToolID: e.ToolID, Class: rc.Name, Loops: rc.Loops}
	case *events.RunStarted:
		if r, ok := s.runs[runID]; ok {
			r.Applied = e.R2R
		}
	case *events.RunCompleted:
		r, ok := s.runs[runID]
		if !ok {
			return nil
		}
		s.learn(d, runID, r, e, rec.Position)
	}
	return nil
}

// learn folds a completed run into its thread; call with mu held.
func (s *R2RState) learn(d *decoded, runID string, r *r2rRun, e *events.RunCompleted, pos uint64) {
	_, obs, err := d.outcome(r.Kind, e)
	if err != nil || obs == nil {
		return
	}
	k := threadKey(r.OrgID, r.Kind, r.ToolID, r.Class)
	t := s.threads[k]
	src := R2RSource{RunID: runID, JobID: e.JobID, Position: pos, Applied: map[string]float64{}, Measured: map[string]float64{}}
	for _, l := range run.R2RLoops(r.Kind) {
		if !slices.Contains(r.Loops, l.Key) {
			continue
		}
		applied, ok := r.Applied[l.Key]
		if !ok {
			applied = l.Unset
		}
		c := l.New()
		if t != nil {
			if prev, ok := t.Controllers[l.Key]; ok {
				c = prev
			}
		}
		next, y, learnt := l.Learn(c, obs, applied)
		if !learnt {
			continue
		}
		if t == nil {
			t = &R2RThread{OrgID: r.OrgID, Kind: string(r.Kind), ToolID: r.ToolID, RecipeClass: r.Class,
				Controllers: map[string]r2r.EWMA{}, LearnedFrom: []R2RSource{}}
			s.threads[k] = t
			s.order = append(s.order, k)
		}
		t.Controllers[l.Key] = next
		src.Applied[l.Key], src.Measured[l.Key] = applied, y
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
	rc, err := run.R2RClass(kind, recipe)
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
		"recipe_class": rc.Name,
		"position":     s.pos,
		"synced":       synced,
	}
	t, ok := s.threads[threadKey(orgID, kind, toolID, rc.Name)]
	if !ok {
		basis["updates"] = 0
		basis["learned_from"] = []string{}
		return nil, basis, nil
	}
	adj := map[string]float64{}
	state := map[string]any{}
	for _, l := range run.R2RLoops(kind) {
		c, ok := t.Controllers[l.Key]
		if !ok {
			continue
		}
		adj[l.Key] = c.Recommend()
		state[l.Key] = c
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
