package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

// backend is a fake of the actor layer and the read models: commands append
// to an in-memory "log" (a position counter), and the read models apply it
// only when WaitFor asks, so a handler that forgets read-your-writes is
// caught. Every query is scoped by organisation, as the real ones are.
type backend struct {
	mu       sync.Mutex
	runs     map[string]projections.Run
	jobs     map[string]projections.Job
	appended uint64 // position of the last "appended" event
	applied  uint64 // position the read models have applied
	stuck    bool   // WaitFor never catches up

	err      error // returned by the next command, when set
	creates  []actors.CreateRun
	commands []recordedCommand
	runsF    []projections.RunFilter
	jobsF    []projections.JobFilter
}

type recordedCommand struct {
	Name string
	Cmd  actors.RunCommand
}

var (
	_ Commands = (*backend)(nil)
	_ Queries  = (*backend)(nil)
)

func newBackend() *backend {
	return &backend{runs: map[string]projections.Run{}, jobs: map[string]projections.Job{}}
}

// addRun stores an applied run and its job.
func (b *backend) addRun(r projections.Run) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.appended++
	b.applied = b.appended
	r.Position = b.appended
	if r.JobID == "" {
		r.JobID = fmt.Sprintf("job-%012x", b.appended)
	}
	b.runs[r.RunID] = r
	jobType := projections.JobTypeIon
	if r.Kind == "rtp" {
		jobType = projections.JobTypeRTP
	}
	b.jobs[r.JobID] = projections.Job{ID: r.JobID, RunID: r.RunID, OrgID: r.OrgID, JobType: jobType,
		UserID: r.UserID, Status: r.Status, CreatedAt: r.CreatedAt}
}

func (b *backend) CreateRun(_ context.Context, c actors.CreateRun) (actors.Accepted, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.creates = append(b.creates, c)
	if err := b.err; err != nil {
		return actors.Accepted{}, err
	}
	b.appended++
	id := fmt.Sprintf("%s-20260101-%08X", strings.ToUpper(string(c.Kind)), b.appended)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	run := projections.Run{RunID: id, JobID: fmt.Sprintf("job-%012x", b.appended), OrgID: c.Meta.OrgID, Kind: string(c.Kind),
		UserID: c.Meta.UserID, Status: projections.StatusQueued, Recipe: c.Recipe, ToolID: c.ToolID,
		Priority: c.Priority, CreatedAt: now, Position: b.appended}
	b.runs[id] = run
	jobType := projections.JobTypeIon
	if c.Kind == "rtp" {
		jobType = projections.JobTypeRTP
	}
	b.jobs[run.JobID] = projections.Job{ID: run.JobID, RunID: id, OrgID: run.OrgID, JobType: jobType,
		UserID: run.UserID, Status: run.Status, CreatedAt: now}
	return actors.Accepted{RunID: id, JobID: run.JobID, Status: projections.StatusQueued, CreatedAt: now,
		Position: b.appended, Revision: 1}, nil
}

func (b *backend) command(name string, c actors.RunCommand) (actors.Accepted, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.commands = append(b.commands, recordedCommand{name, c})
	if err := b.err; err != nil {
		return actors.Accepted{}, err
	}
	run, ok := b.runs[c.RunID]
	if !ok || run.OrgID != c.Meta.OrgID {
		return actors.Accepted{}, actors.ErrNotFound
	}
	b.appended++
	acc := actors.Accepted{RunID: run.RunID, JobID: run.JobID, Status: run.Status, Position: b.appended, Revision: 5}
	if name == "retry" {
		acc.JobID = "job-00000000e7e1"
		acc.Status = projections.StatusQueued
	}
	return acc, nil
}

func (b *backend) CancelRun(_ context.Context, c actors.RunCommand) (actors.Accepted, error) {
	return b.command("cancel", c)
}

func (b *backend) PauseRun(_ context.Context, c actors.RunCommand) (actors.Accepted, error) {
	return b.command("pause", c)
}

func (b *backend) ResumeRun(_ context.Context, c actors.RunCommand) (actors.Accepted, error) {
	return b.command("resume", c)
}

func (b *backend) RetryJob(_ context.Context, c actors.RunCommand) (actors.Accepted, error) {
	return b.command("retry", c)
}

func (b *backend) Run(_ context.Context, orgID, runID string) (projections.Run, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.runs[runID]
	if !ok || r.OrgID != orgID || r.Position > b.applied {
		return projections.Run{}, projections.ErrNotFound
	}
	return r, nil
}

func (b *backend) Runs(_ context.Context, f projections.RunFilter) ([]projections.Run, int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.runsF = append(b.runsF, f)
	var all []projections.Run
	for _, r := range b.runs {
		if r.OrgID == f.OrgID && (f.Kind == "" || r.Kind == f.Kind) && (f.Status == "" || r.Status == f.Status) &&
			r.Position <= b.applied {
			all = append(all, r)
		}
	}
	slices.SortFunc(all, func(x, y projections.Run) int { return cmp.Compare(x.RunID, y.RunID) })
	return page(all, f.Offset, f.Limit), len(all), nil
}

func (b *backend) Job(_ context.Context, orgID, jobID string) (projections.Job, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, ok := b.jobs[jobID]
	if !ok || j.OrgID != orgID {
		return projections.Job{}, projections.ErrNotFound
	}
	return j, nil
}

func (b *backend) Jobs(_ context.Context, f projections.JobFilter) ([]projections.Job, int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jobsF = append(b.jobsF, f)
	var all []projections.Job
	for _, j := range b.jobs {
		if j.OrgID == f.OrgID && (f.JobType == "" || j.JobType == f.JobType) && (f.Status == "" || j.Status == f.Status) {
			all = append(all, j)
		}
	}
	slices.SortFunc(all, func(x, y projections.Job) int { return cmp.Compare(x.ID, y.ID) })
	return page(all, f.Offset, f.Limit), len(all), nil
}

func page[T any](all []T, offset, limit int) []T {
	if offset >= len(all) {
		return nil
	}
	return all[offset:min(len(all), offset+limit)]
}

func (b *backend) WaitFor(ctx context.Context, pos uint64) error {
	b.mu.Lock()
	stuck := b.stuck
	if !stuck {
		b.applied = max(b.applied, min(pos, b.appended))
	}
	b.mu.Unlock()
	if stuck {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (b *backend) Position() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.applied
}

func (b *backend) setErr(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
}

func (b *backend) lastCreate(t *testing.T) actors.CreateRun {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.creates) == 0 {
		t.Fatal("CreateRun was not called")
	}
	return b.creates[len(b.creates)-1]
}

func (b *backend) lastCommand(t *testing.T) recordedCommand {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.commands) == 0 {
		t.Fatal("no command was sent")
	}
	return b.commands[len(b.commands)-1]
}

// logStore is a fake event log serving one stream. It embeds the interface
// and overrides the one method the API uses.
type logStore struct {
	events.Store
	stream string
	recs   []events.Record
}

func (s *logStore) ReadStream(_ context.Context, stream string, _ events.Direction, _ uint64, _ int) ([]events.Record, error) {
	if stream != s.stream {
		return nil, events.ErrNotFound
	}
	return s.recs, nil
}

// Test harness.

var testSecret = []byte("test-secret-that-is-at-least-32-bytes-long")

type harness struct {
	srv  *Server
	b    *backend
	logs *bytes.Buffer
}

func newHarness(t *testing.T, mod ...func(*Config, *Deps)) *harness {
	t.Helper()
	h := &harness{b: newBackend(), logs: &bytes.Buffer{}}
	cfg := Config{
		JWTSecret:             testSecret,
		Logger:                slog.New(slog.NewJSONHandler(&syncWriter{w: h.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Node:                  "node-test",
		ReadYourWritesTimeout: 200 * time.Millisecond,
	}
	d := Deps{Commands: h.b, Queries: h.b}
	for _, m := range mod {
		m(&cfg, &d)
	}
	h.srv = New(cfg, d)
	return h
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// token returns a valid token for user "u-<role>" of org.
func token(t *testing.T, role Role, org string) string {
	t.Helper()
	tok, err := IssueToken(testSecret, "u-"+string(role), string(role)+"@example.com", org, string(role), time.Hour)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	return tok
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode body %q: %v", r.Body, err)
	}
	return m
}

// Err decodes an error body.
func (r response) Err(t *testing.T) ErrorDetail {
	t.Helper()
	var b ErrorBody
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("decode error body %q: %v", r.Body, err)
	}
	if b.Error.Code == "" || b.Error.RequestID == "" {
		t.Fatalf("error body %s lacks code or request_id", r.Body)
	}
	return b.Error
}

// do sends a request through the Fiber app. tok may be "" for none;
// headers are name, value pairs.
func (h *harness) do(t *testing.T, method, path, tok, body string, headers ...string) response {
	t.Helper()
	if tok != "" {
		headers = append([]string{"Authorization", "Bearer " + tok}, headers...)
	}
	return request(t, h.srv, method, path, body, headers...)
}

// request sends a request through srv's Fiber app and reads the answer;
// headers are name, value pairs.
func request(t *testing.T, srv *Server, method, path, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := srv.App().Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}
