package projections_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
	"github.com/spectra-fab/spectra/projections"
)

// TestVerifierNamesEditsMadeInTheStore: a run recorded by the actors
// verifies; a copy of its stream written straight into a store (bypassing
// Spectra) with one event rewritten and another deleted is reported with
// both breaks, and as diverging.
func TestVerifierNamesEditsMadeInTheStore(t *testing.T) {
	ctx := t.Context()
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	engines := map[process.Kind]actors.EngineFactory{process.KindIon: processtest.Factory{Kind: process.KindIon}}
	svc, err := actors.New(actors.Config{TimeScale: 0, Node: "n1"}, store, nil, engines, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	md := events.Metadata{OrgID: "org-1", UserID: "eng-1", Role: "engineer"}
	acc, err := svc.CreateRun(ctx, actors.CreateRun{Kind: process.KindIon, Recipe: json.RawMessage(`{"steps":80,"alarm_at":33}`), Meta: md})
	if err != nil {
		t.Fatal(err)
	}
	recs := waitTerminal(t, store, acc.RunID)

	v := &projections.Verifier{Store: store, Engines: actors.EngineFunc(engines), Policy: actors.Config{}.Policy()}
	rep, err := v.Verify(ctx, "org-1", acc.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Identical || !rep.Chain.Intact() || !rep.Chain.Sealed {
		t.Fatalf("Verify(as recorded) = identical %v, chain %+v", rep.Identical, rep.Chain)
	}
	if _, err := v.Verify(ctx, "org-2", acc.RunID); err == nil {
		t.Errorf("Verify(another organisation's run) = nil error, want ErrNotFound")
	}

	// Write the stream into another store event by event, as someone with
	// access to the store could: revision 4 rewritten, revision 7 gone.
	forged := memory.New()
	t.Cleanup(func() { _ = forged.Close() })
	for _, rec := range recs {
		if rec.Revision == 7 {
			continue
		}
		ev := events.Event{ID: rec.ID, Type: rec.Type, Data: rec.Data, Metadata: rec.Metadata}
		if rec.Revision == 4 {
			ev.Data = json.RawMessage(strings.Replace(string(rec.Data), `"progress":`, `"progress":1,"x":`, 1))
		}
		if _, err := forged.Append(ctx, rec.Stream, events.ExpectAny, ev); err != nil {
			t.Fatal(err)
		}
	}
	v.Store = forged
	rep, err = v.Verify(ctx, "org-1", acc.RunID)
	if err != nil {
		t.Fatal(err)
	}
	// The store renumbers: the old revision 8 is now 7.
	var links []uint64
	for _, b := range rep.Chain.Breaks {
		if b.Kind == events.BreakLink {
			links = append(links, b.Revision)
		}
	}
	if len(links) != 2 || links[0] != 5 || links[1] != 7 {
		t.Errorf("Chain.Breaks = %+v, want broken links at revisions 5 (after the rewrite) and 7 (after the deletion)", rep.Chain.Breaks)
	}
	if rep.Identical || rep.Divergence == nil || rep.Divergence.Revision != 4 {
		t.Errorf("Divergence = %+v, want the rewritten revision 4", rep.Divergence)
	}
}

func waitTerminal(t *testing.T, store events.Store, runID string) []events.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := store.ReadStream(context.Background(), events.RunStream(runID), events.Forwards, 0, 0)
		if err == nil && len(recs) > 0 && events.Seals(recs[len(recs)-1].Type) {
			return recs
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("run %s did not finish", runID)
	return nil
}
