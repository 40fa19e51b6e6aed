package node_test

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/kurrent/kurrenttest"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
)

// The KurrentDB server (the protocol double) stops for 10 s while 10 runs
// are in flight: commands answer 503 with Retry-After meanwhile, runs stop
// appending (their actors back off) and, when it returns, every run
// completes with nothing lost and nothing recorded twice. The same as
// TestExternalNATSOutage, for the other log store.
func TestKurrentDBOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10 s store outage; skipped with -short")
	}
	srv, conn := kurrenttest.Start(t)
	secret := []byte("kurrent-outage-secret-0123456789abcdef")
	n, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), EventStore: conn, TimeScale: 1, JWTSecret: secret,
		QueueLimit: 100, Engines: map[process.Kind]actors.EngineFactory{process.KindIon: processtest.Factory{Kind: process.KindIon}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	tok, err := api.IssueToken(secret, "u-1", "u@example.com", "org-1", "engineer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	create := func() (int, string, map[string]any) {
		req := httptest.NewRequest("POST", "/api/ion/runs", strings.NewReader(`{"steps":100}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := n.API().App().Test(req, 30_000)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, res.Header.Get("Retry-After"), body
	}
	var runs []string
	for range 10 {
		status, _, body := create()
		if status != 201 {
			t.Fatalf("create = %d %v, want 201", status, body)
		}
		runs = append(runs, body["run_id"].(string))
	}
	time.Sleep(time.Second) // the runs are running

	srv.Stop()
	stopped := time.Now()
	for {
		status, retry, body := create()
		if status == 503 {
			if secs, err := strconv.Atoi(retry); err != nil || secs <= 0 {
				t.Errorf("503 with Retry-After %q, want seconds", retry)
			}
			t.Logf("first 503 %v after the server stopped", time.Since(stopped).Round(time.Millisecond))
			break
		}
		if time.Since(stopped) > 20*time.Second { // a create sent before the store knew may wait out its deadline
			t.Fatalf("create during the outage = %d %v, want 503", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(max(10*time.Second-time.Since(stopped), 0))
	if err := srv.Listen(srv.Addr()); err != nil {
		t.Fatal(err)
	}

	back := time.Now()
	for _, id := range runs {
		waitTerminal(t, n, id, 2*time.Minute)
	}
	t.Logf("every run completed %v after the server came back", time.Since(back).Round(time.Millisecond))
	for _, id := range runs {
		recs, err := n.Store().ReadStream(t.Context(), events.RunStream(id), events.Forwards, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids, counts := map[string]bool{}, map[string]int{}
		next := -1 // the step the next telemetry batch starts at
		for _, r := range recs {
			if ids[r.ID] {
				t.Errorf("run %s: event %s (%s) recorded twice", id, r.ID, r.Type)
			}
			ids[r.ID] = true
			counts[events.BaseType(r.Type)]++
			if events.BaseType(r.Type) == events.TypeTelemetryRecorded {
				p, err := events.Decode(r)
				if err != nil {
					t.Fatal(err)
				}
				tr := p.(*events.TelemetryRecorded)
				if next >= 0 && tr.FirstStep != next {
					t.Errorf("run %s: a telemetry batch starts at step %d, want %d (no step lost or doubled)", id, tr.FirstStep, next)
				}
				n := 0
				for _, xs := range tr.Samples {
					n = len(xs)
					break
				}
				next = tr.FirstStep + n
			}
		}
		if counts[events.TypeRunRequested] != 1 || counts[events.TypeRunCompleted] != 1 {
			t.Errorf("run %s: %v, want one RunRequested and one RunCompleted", id, counts)
		}
	}
	if status, _, body := create(); status != 201 {
		t.Errorf("create after the outage = %d %v, want 201", status, body)
	}
}
