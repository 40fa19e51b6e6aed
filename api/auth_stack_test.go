package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
	"github.com/spectra-fab/spectra/projections"
)

// The real stack: the in-memory event store (it passes the store
// conformance suite), the projection runner with the job-status, security
// and audit models, the actor layer with a small deterministic engine, and
// the API in front of them.

// memArtifacts stands in for the NATS object store (no server needed for
// what these tests check).
type memArtifacts struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (m *memArtifacts) Put(_ context.Context, key, _ string, data []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[key] = bytes.Clone(data)
	return "artifact://" + key, nil
}

func (m *memArtifacts) Open(_ context.Context, key string) (io.ReadCloser, string, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[key]
	if !ok {
		return nil, "", 0, ErrArtifactGone
	}
	return io.NopCloser(bytes.NewReader(b)), "application/json", int64(len(b)), nil
}

type secStack struct {
	srv    *Server
	store  events.Store
	svc    *actors.Service
	runner *projections.Runner
	jobs   *projections.JobStatus
	sec    *projections.Security
	audit  *projections.Audit
	fab    *projections.Fab
	tools  *projections.Tools
	logs   *bytes.Buffer
}

// newStack builds and starts the stack; t.Cleanup stops it, actors first.
func newSecStack(t *testing.T, mod ...func(*Config)) *secStack {
	t.Helper()
	st := &secStack{store: memory.New(), jobs: projections.NewJobStatus(), sec: projections.NewSecurity(),
		audit: projections.NewAudit(), fab: projections.NewFab(), tools: projections.NewTools(), logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(&syncWriter{w: st.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st.runner = projections.NewRunner(st.store, nil, nil, st.jobs, st.sec, st.audit, st.fab, st.tools)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.runner.Run(ctx) }()
	arts := &memArtifacts{files: map[string][]byte{}}
	engines := map[process.Kind]actors.EngineFactory{process.KindIon: processtest.Factory{Kind: process.KindIon},
		process.KindRTP: processtest.Factory{Kind: process.KindRTP}}
	svc, err := actors.New(actors.Config{TimeScale: 1, QueueLimit: 1000, Node: "node-test"}, st.store, arts, engines, nil)
	if err != nil {
		t.Fatalf("actors.New: %v", err)
	}
	st.svc = svc
	t.Cleanup(func() {
		_ = svc.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runner.Run: %v", err)
		}
		_ = st.store.Close()
	})
	select {
	case <-st.runner.CaughtUp():
	case <-time.After(5 * time.Second):
		t.Fatal("projections did not catch up")
	}
	cfg := Config{JWTSecret: testSecret, Logger: logger, Node: "node-test", ReadYourWritesTimeout: 2 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	st.srv = New(cfg, Deps{Commands: svc, Queries: projections.JobQueries{Model: st.jobs, Runner: st.runner}, Store: st.store,
		Artifacts: arts, Tunings: svc, Events: st.store, Credentials: st.sec, Audit: st.audit,
		Fab: newFabService(st.store, svc), FabLists: st.fab,
		Verifier: &projections.Verifier{Store: st.store, Engines: actors.EngineFunc(engines), Policy: actors.Config{}.Policy()},
		WhatIf:   &projections.WhatIfs{Store: st.store}, Tools: st.tools})
	return st
}

// do sends a request; headers are name, value pairs ("Authorization",
// "Bearer …" or "X-API-Key", "…").
func (st *secStack) do(t *testing.T, method, path, body string, headers ...string) response {
	t.Helper()
	return request(t, st.srv, method, path, body, headers...)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// as is the Authorization header of user u-<role> of org.
func as(t *testing.T, role Role, org string) []string { return bearer(token(t, role, org)) }

// createRun creates a run of org straight through the actor layer and
// waits until the read model shows it with a status in want (any when
// empty).
func (st *secStack) createRun(t *testing.T, kind process.Kind, org string, steps int, want ...string) projections.Run {
	t.Helper()
	acc, err := st.svc.CreateRun(t.Context(), actors.CreateRun{Kind: kind,
		Recipe: json.RawMessage(fmt.Sprintf(`{"steps":%d}`, steps)),
		Meta:   events.Metadata{OrgID: org, UserID: "u-setup", Role: "engineer", RequestID: "req-setup"}})
	if err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	return st.waitRun(t, org, acc.RunID, want...)
}

func (st *secStack) waitRun(t *testing.T, org, runID string, want ...string) projections.Run {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := st.jobs.Run(t.Context(), org, runID)
		if err == nil && (len(want) == 0 || contains(want, r.Status)) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: status %q (err %v), want one of %v", runID, r.Status, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// auditEntries queries GET /api/audit as an admin of org.
func (st *secStack) auditEntries(t *testing.T, org, query string, minPos string) []projections.AuditEntry {
	t.Helper()
	h := as(t, RoleAdmin, org)
	if minPos != "" {
		h = append(h, HeaderMinPosition, minPos)
	}
	res := st.do(t, http.MethodGet, "/api/audit?"+query, "", h...)
	if res.Status != http.StatusOK {
		t.Fatalf("GET /api/audit?%s = %d %s", query, res.Status, res.Body)
	}
	var page auditPage
	if err := json.Unmarshal(res.Body, &page); err != nil {
		t.Fatalf("decode audit page %s: %v", res.Body, err)
	}
	return page.Entries
}

// head is the position of the last event in the log, for X-Min-Position:
// a read that waits for it sees everything appended so far (the runner's
// own position may still be behind).
func (st *secStack) head(t *testing.T) string {
	t.Helper()
	recs, err := st.store.ReadAll(t.Context(), 0, events.Filter{}, 0)
	if err != nil || len(recs) == 0 {
		t.Fatalf("read the log's head: %d records, %v", len(recs), err)
	}
	return strconv.FormatUint(recs[len(recs)-1].Position, 10)
}

// runCmd is a command on run r by its organisation's set-up user.
func runCmd(r projections.Run) actors.RunCommand {
	return actors.RunCommand{RunID: r.RunID, Meta: events.Metadata{OrgID: r.OrgID, UserID: "u-setup", Role: "engineer"}}
}
