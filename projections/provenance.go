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
// engines and run policy. It writes nothing.
type Verifier struct {
	Store   StreamReader
	Engines run.NewEngine
	Policy  run.Policy
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
	return run.Verify(runID, recs, v.Engines, v.Policy, v.model(req.Kind), v.PublicKey), nil
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
