package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// nodeModels returns fresh read models, those a node runs (node.go).
func nodeModels() []projections.Projection {
	return []projections.Projection{projections.NewJobStatus(), projections.NewSPCCharts(projections.SPCConfig{Baseline: 3}),
		projections.NewR2RState(), projections.NewSecurity(), projections.NewAudit(), projections.NewFab(),
		projections.NewMultivariate(projections.MultivariateConfig{Library: 4}), projections.NewTools()}
}

// A real log: a node (actors, engines, SPC monitor) runs ion and RTP
// recipes for two organisations, one run cancelled while queued and
// retried. The read models applied live, as the log grew, and the same
// models rebuilt from the whole log afterwards snapshot byte for byte the
// same; and every telemetry batch of the log decodes as encoding/json
// decodes it.
func TestRebuildMatchesTheLiveReadModels(t *testing.T) {
	nd, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), TimeScale: 0, NoSync: true, SPCBaseline: 3,
		QueueLimit: 2, JWTSecret: []byte("rebuild-test-secret-0123456789abcdef")})
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(nd.Close)
	store := nd.Store()
	headOf := func() uint64 {
		h, err := store.(interface {
			Head(context.Context) (uint64, error)
		}).Head(t.Context())
		if err != nil {
			t.Fatalf("Head: %v", err)
		}
		return h
	}

	live := nodeModels()
	liveRunner := projections.NewRunner(store, nil, nil, live...)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- liveRunner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("live Run: %v", err)
		}
	})
	<-liveRunner.CaughtUp()

	recipes := map[process.Kind][]byte{}
	for kind, file := range map[process.Kind]string{process.KindIon: "ion-seed.json", process.KindRTP: "rtp-seed.json"} {
		if recipes[kind], err = os.ReadFile(filepath.Join("..", "examples", file)); err != nil {
			t.Fatal(err)
		}
	}
	var runIDs []string
	create := func(kind process.Kind, org, tool string) actors.Accepted {
		t.Helper()
		acc, err := nd.Actors().CreateRun(t.Context(), actors.CreateRun{Kind: kind, Recipe: recipes[kind], ToolID: tool,
			Meta: events.Metadata{OrgID: org, UserID: "u-" + org, Role: "engineer"}})
		if err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		runIDs = append(runIDs, acc.RunID)
		return acc
	}
	for i := range 8 {
		create(process.KindIon, "org-1", fmt.Sprintf("IMP-%d", i%2))
	}
	for range 3 {
		create(process.KindRTP, "org-2", "RTP-1")
	}
	md := events.Metadata{OrgID: "org-2", UserID: "u-org-2", Role: "engineer"}
	queued := create(process.KindIon, "org-2", "IMP-9")
	if _, err := nd.Actors().CancelRun(t.Context(), actors.RunCommand{RunID: queued.RunID, Reason: "test", Meta: md}); err != nil {
		t.Fatalf("CancelRun: %v", err)
	}
	waitTerminal := func() {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for _, id := range runIDs {
			org := "org-1"
			if r, err := nd.Jobs().Run(t.Context(), "org-2", id); err == nil {
				org = r.OrgID
			}
			for {
				r, err := nd.Jobs().Run(t.Context(), org, id)
				if err == nil && projections.Terminal(r.Status) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("run %s not finished: %+v, %v", id, r, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	waitTerminal()
	if _, err := nd.Actors().RetryJob(t.Context(), actors.RunCommand{RunID: queued.RunID, Meta: md}); err != nil {
		t.Fatalf("RetryJob: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	waitTerminal()

	// The SPC monitor appends limits and violations after completions:
	// wait until the log stops growing and the live models have it all.
	head := headOf()
	for settled := time.Now(); time.Since(settled) < 500*time.Millisecond; {
		time.Sleep(50 * time.Millisecond)
		if h := headOf(); h != head {
			head, settled = h, time.Now()
		}
	}
	if err := liveRunner.WaitFor(t.Context(), head); err != nil {
		t.Fatalf("WaitFor(%d): %v", head, err)
	}
	want := snapshots(t, live)

	rebuilt := nodeModels()
	r := projections.NewRunner(store, nil, nil, rebuilt...)
	rctx, rcancel := context.WithCancel(t.Context())
	rdone := make(chan error, 1)
	go func() { rdone <- r.Run(rctx) }()
	<-r.CaughtUp()
	rcancel()
	if err := <-rdone; err != nil {
		t.Fatalf("rebuild Run: %v", err)
	}
	if r.Position() != head || headOf() != head {
		t.Fatalf("rebuilt to %d, log head %d, live models at %d", r.Position(), headOf(), head)
	}
	got := snapshots(t, rebuilt)
	for name, w := range want {
		if string(got[name]) != string(w) {
			t.Errorf("%s rebuilt differs from live:\nlive:    %s\nrebuilt: %s", name, w, got[name])
		}
	}
	var job projections.Run
	if job, err = nd.Jobs().Run(t.Context(), "org-1", runIDs[0]); err != nil || job.Status != projections.StatusCompleted {
		t.Fatalf("first run: %+v, %v (want completed)", job, err)
	}

	recs, err := store.ReadAll(t.Context(), 0, events.Filter{Types: []string{events.TypeTelemetryRecorded}}, 0)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if len(recs) < 100 {
		t.Fatalf("the log holds %d telemetry batches, want a real run's worth", len(recs))
	}
	for _, rec := range recs {
		p, err := events.Decode(rec)
		if err != nil {
			t.Fatalf("Decode(%s): %v", rec.Data, err)
		}
		var want events.TelemetryRecorded
		if err := json.Unmarshal(rec.Data, &want); err != nil || !reflect.DeepEqual(p, &want) {
			t.Fatalf("Decode(%s) = %+v, encoding/json gives %+v (%v)", rec.Data, p, want, err)
		}
	}
}

func snapshots(t *testing.T, ps []projections.Projection) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range ps {
		b, err := p.Snapshot()
		if err != nil {
			t.Fatalf("%s Snapshot: %v", p.Name(), err)
		}
		out[p.Name()] = b
	}
	return out
}
