package projections

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// StreamReader reads one stream of the event log. Any events.Store is one.
type StreamReader interface {
	ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error)
}

// Verifier answers golden-run verification (run.Verify) from the event
// log: it reads a run's stream and re-simulates it with this node's
// engines under the policy the run recorded. It writes nothing.
type Verifier struct {
	Store   StreamReader
	Engines run.NewEngine
	// Policy is assumed for runs whose log records none (older logs);
	// zero: run.DefaultPolicy, the documented one.
	Policy run.Policy
	// PublicKey, when set, verifies the seals' signatures.
	PublicKey ed25519.PublicKey

	mu     sync.Mutex
	models map[process.Kind]string
}

// Verify verifies run runID of organisation orgID. It returns
// events.ErrNotFound for a run that does not exist or belongs to another
// organisation.
func (v *Verifier) Verify(ctx context.Context, orgID, runID string) (run.Report, error) {
	recs, err := v.Store.ReadStream(ctx, events.RunStream(runID), events.Forwards, 0, 0)
	if err != nil {
		return run.Report{}, fmt.Errorf("verify %s: %w", runID, err)
	}
	if len(recs) == 0 || recs[0].Metadata.OrgID != orgID {
		return run.Report{}, fmt.Errorf("verify %s: %w", runID, events.ErrNotFound)
	}
	p, err := events.Decode(recs[0])
	req, ok := p.(*events.RunRequested)
	if err != nil || !ok {
		return run.Report{}, fmt.Errorf("verify %s: %w", runID, errors.Join(events.ErrNotFound, err))
	}
	assumed := v.Policy
	if assumed == (run.Policy{}) {
		assumed = run.DefaultPolicy
	}
	return run.Verify(runID, recs, v.Engines, assumed, v.model(req.Kind), v.PublicKey), nil
}

// model is the model version of this node's engine of kind, computed once.
func (v *Verifier) model(kind process.Kind) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if m, ok := v.models[kind]; ok {
		return m
	}
	if v.models == nil {
		v.models = map[process.Kind]string{}
	}
	m, err := run.Fingerprint(v.Engines, kind)
	if err != nil {
		m = ""
	}
	v.models[kind] = m
	return m
}

// LogReader reads the whole event log. Any events.Store is one.
type LogReader interface {
	ReadAll(ctx context.Context, after uint64, f events.Filter, limit int) ([]events.Record, error)
}

// WhatIfs answers counterfactual replays of the run-to-run law
// (run.WhatIf) over an organisation's recorded runs: a shadow of the R2R
// projection, built per request. It writes nothing.
type WhatIfs struct {
	Store LogReader
}

// WhatIfRequest is a what-if: the setting, the runs to answer (by id, or
// all when empty) and the SPC baseline (default 20 points).
type WhatIfRequest struct {
	Setting  run.Setting `json:"setting"`
	RunIDs   []string    `json:"run_ids,omitempty"`
	ToolID   string      `json:"tool_id,omitempty"`
	Baseline int         `json:"baseline,omitempty"`
}

// WhatIf replays organisation orgID's runs under q.Setting.
func (w *WhatIfs) WhatIf(ctx context.Context, orgID string, q WhatIfRequest) (run.WhatIfReport, error) {
	recs, err := w.Store.ReadAll(ctx, 0, events.Filter{Categories: []string{events.CategoryRun}, OrgID: orgID,
		Types: []string{events.TypeRunRequested, events.TypeRunStarted, events.TypeRunCompleted}}, 0)
	if err != nil {
		return run.WhatIfReport{}, fmt.Errorf("what-if: %w", err)
	}
	want := map[string]bool{}
	for _, id := range q.RunIDs {
		want[id] = true
	}
	tools := map[string]string{}
	for _, rec := range recs {
		if events.BaseType(rec.Type) != events.TypeRunRequested {
			continue
		}
		if p, err := events.Decode(rec); err == nil {
			if e, ok := p.(*events.RunRequested); ok {
				tools[events.StreamID(rec.Stream)] = e.ToolID
			}
		}
	}
	baseline := q.Baseline
	if baseline <= 0 {
		baseline = 20
	}
	return run.WhatIf(recs, q.Setting, func(id string) bool {
		return (len(want) == 0 || want[id]) && (q.ToolID == "" || tools[id] == q.ToolID)
	}, baseline), nil
}
