package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
	"github.com/spectra-fab/spectra/projections"
)

// externalNATS is a separate nats-server (JetStream on disk) on a port of
// its own, which the test stops and starts again.
type externalNATS struct {
	opts *server.Options
	ns   *server.Server
}

func startExternalNATS(t *testing.T) *externalNATS {
	t.Helper()
	return startExternalNATSWith(t, func(*server.Options) {})
}

// startExternalNATSWith starts an external NATS whose options mod adjusts
// (authorization, say).
func startExternalNATSWith(t *testing.T, mod func(*server.Options)) *externalNATS {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	e := &externalNATS{opts: &server.Options{ServerName: "external", Host: "127.0.0.1", Port: port, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true}}
	mod(e.opts)
	e.start(t)
	t.Cleanup(e.stop)
	return e
}

func (e *externalNATS) start(t *testing.T) {
	t.Helper()
	ns, err := server.NewServer(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("external nats-server not ready")
	}
	e.ns = ns
}

func (e *externalNATS) stop() {
	if e.ns != nil {
		e.ns.Shutdown()
		e.ns.WaitForShutdown()
		e.ns = nil
	}
}

func (e *externalNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", e.opts.Port) }

// The external NATS stops for 30 s while 20 runs are in flight: commands
// answer 503 with Retry-After meanwhile; when it returns, every run
// completes, none loses or doubles an event.
func TestExternalNATSOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s store outage; skipped with -short")
	}
	ext := startExternalNATS(t)
	n, create := startOutageNode(t, node.Config{NATSURL: ext.url()}, 150)
	var runs []string
	for range 20 {
		status, _, body := create()
		if status != 201 {
			t.Fatalf("create = %d %v, want 201", status, body)
		}
		runs = append(runs, body["run_id"].(string))
	}
	time.Sleep(2 * time.Second) // the runs are running

	ext.stop()
	// A create that reaches the node before its client has seen the
	// connection close goes on to the run actor and times out (504, naming
	// its idempotency key: CI caught one); once the client knows, creates
	// are refused at once with 503. Hence a deadline past one command
	// timeout (10 s).
	deadline := time.Now().Add(25 * time.Second)
	for {
		status, retry, body := create()
		if status == 503 {
			if secs, err := strconv.Atoi(retry); err != nil || secs <= 0 {
				t.Errorf("503 with Retry-After %q, want seconds", retry)
			}
			break
		}
		if status != 504 || time.Now().After(deadline) {
			t.Fatalf("create during the outage = %d %v, want 503", status, body)
		}
		t.Logf("a create sent as the store went away timed out (504): %v", body)
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(30 * time.Second)
	ext.start(t)

	for _, id := range runs {
		waitTerminal(t, n, id, 3*time.Minute)
	}
	checkNothingLostOrDoubled(t, n, runs)
	if status, _, body := create(); status != 201 {
		t.Errorf("create after the outage = %d %v, want 201", status, body)
	}
}

// startOutageNode starts a node at time scale 1 on the store cfg names
// (the rest of cfg is filled in here) and returns it with a call that
// creates an ion run of the given steps as an engineer of org-1, answering
// the status, the Retry-After header and the body.
func startOutageNode(t *testing.T, cfg node.Config, steps int) (*node.Node, func() (int, string, map[string]any)) {
	t.Helper()
	secret := []byte("outage-test-secret-0123456789abcdef")
	cfg.DataDir, cfg.TimeScale, cfg.JWTSecret, cfg.QueueLimit = t.TempDir(), 1, secret, 100
	// The node's warnings and errors (crashed and fenced run actors, the
	// store's outage) are printed if the test fails.
	logs := &lockedBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the node's warnings and errors:\n%s", logs.excerpt(100))
		}
	})
	cfg.Engines = map[process.Kind]actors.EngineFactory{process.KindIon: processtest.Factory{Kind: process.KindIon}}
	n, err := node.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	tok, err := api.IssueToken(secret, "u-1", "u@example.com", "org-1", "engineer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"steps":%d}`, steps)
	return n, func() (int, string, map[string]any) {
		req := httptest.NewRequest("POST", "/api/ion/runs", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := n.API().App().Test(req, 30_000)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, res.Header.Get("Retry-After"), out
	}
}

// lockedBuffer is a log's writer that is safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// excerpt is the first n lines written and the last n.
func (b *lockedBuffer) excerpt(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimSuffix(b.buf.String(), "\n"), "\n")
	if len(lines) <= 2*n {
		return strings.Join(lines, "\n")
	}
	return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n… %d lines …\n", len(lines)-2*n) + strings.Join(lines[len(lines)-n:], "\n")
}

// checkNothingLostOrDoubled reads each run's stream after an outage: no
// event recorded twice, one RunRequested and one RunCompleted, and the
// telemetry batches follow each other step by step (no step lost or
// recorded twice).
func checkNothingLostOrDoubled(t *testing.T, n *node.Node, runs []string) {
	t.Helper()
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
			if events.BaseType(r.Type) != events.TypeTelemetryRecorded {
				continue
			}
			p, err := events.Decode(r)
			if err != nil {
				t.Fatal(err)
			}
			tr := p.(*events.TelemetryRecorded)
			if next >= 0 && tr.FirstStep != next {
				t.Errorf("run %s: a telemetry batch starts at step %d, want %d (no step lost or doubled)", id, tr.FirstStep, next)
			}
			steps := 0
			for _, xs := range tr.Samples {
				steps = len(xs)
				break
			}
			next = tr.FirstStep + steps
		}
		if counts[events.TypeRunRequested] != 1 || counts[events.TypeRunCompleted] != 1 {
			t.Errorf("run %s: %v, want one RunRequested and one RunCompleted", id, counts)
		}
	}
}

func waitTerminal(t *testing.T, n *node.Node, runID string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := n.Jobs().Run(t.Context(), "org-1", runID)
		if err == nil && projections.Terminal(r.Status) {
			if r.Status != projections.StatusCompleted {
				t.Errorf("run %s ended %s, want completed", runID, r.Status)
			}
			return
		}
		if time.Now().After(deadline) {
			// Which is behind: the run (its log) or the read model?
			var types []string
			recs, err := n.Store().ReadStream(t.Context(), events.RunStream(runID), events.Forwards, 0, 0)
			for _, rec := range recs {
				types = append(types, events.BaseType(rec.Type))
			}
			t.Fatalf("run %s: status %q after %v, want completed; its log (%v): %v", runID, r.Status, within, err, types)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
