package node_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/kurrent"
	"github.com/spectra-fab/spectra/events/kurrent/kurrenttest"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// A node whose event store is KurrentDB (the in-repo gRPC protocol double,
// spoken to by the real EventStore client) runs the seed's ion recipe to
// completion; its events read back through a second client.
func TestNodeOnKurrentDBRunsTheSeedRecipe(t *testing.T) {
	_, conn := kurrenttest.Start(t)
	node, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), EventStore: conn, TimeScale: 0,
		JWTSecret: []byte("kurrent-test-secret-0123456789abcdef")})
	if err != nil {
		t.Fatalf("Start on %s: %v", conn, err)
	}
	t.Cleanup(node.Close)
	recipe, err := os.ReadFile(filepath.Join("..", "examples", "ion-seed.json"))
	if err != nil {
		t.Fatal(err)
	}
	md := events.Metadata{OrgID: "org-1", UserID: "u-1", Role: "engineer"}
	acc, err := node.Actors().CreateRun(t.Context(), actors.CreateRun{Kind: process.KindIon, Recipe: recipe, Meta: md})
	if err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	var run projections.Run
	for time.Now().Before(deadline) {
		if run, err = node.Jobs().Run(t.Context(), "org-1", acc.RunID); err == nil && projections.Terminal(run.Status) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if run.Status != projections.StatusCompleted {
		t.Fatalf("run status = %q, want completed", run.Status)
	}

	client, err := kurrent.Open(t.Context(), conn, kurrent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	recs, err := client.ReadStream(ctx, events.RunStream(acc.RunID), events.Forwards, 0, 0)
	if err != nil {
		t.Fatalf("ReadStream through the client: %v", err)
	}
	if len(recs) < 10 || events.BaseType(recs[0].Type) != events.TypeRunRequested ||
		events.BaseType(recs[len(recs)-1].Type) != events.TypeRunCompleted {
		t.Fatalf("read back %d events, first %s, last %s", len(recs), recs[0].Type, recs[len(recs)-1].Type)
	}
	for i, r := range recs {
		if r.Revision != uint64(i) || r.Metadata.OrgID != "org-1" {
			t.Fatalf("record %d: revision %d, org %q", i, r.Revision, r.Metadata.OrgID)
		}
	}
}
