package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

func TestJobGetAndList(t *testing.T) {
	h := newHarness(t)
	for i := range 5 {
		kind := []string{"ion", "rtp"}[i%2]
		h.b.addRun(projections.Run{RunID: fmt.Sprintf("R-%d", i), JobID: fmt.Sprintf("job-%012d", i), OrgID: "org-1",
			Kind: kind, Status: "queued"})
	}
	tok := token(t, RoleViewer, "org-1")

	res := h.do(t, http.MethodGet, "/api/jobs/job-000000000001", tok, "")
	if res.Status != http.StatusOK {
		t.Fatalf("GET /api/jobs/job-1 = %d; body %s", res.Status, res.Body)
	}
	got := res.JSON(t)
	if got["id"] != "job-000000000001" || got["run_id"] != "R-1" || got["job_type"] != "rtp" || got["org_id"] != "org-1" {
		t.Errorf("GET /api/jobs/job-1 = %v", got)
	}
	for _, name := range []string{"status", "progress", "current_step", "recipe_data", "started_at", "completed_at",
		"error_message", "retry_count", "logs_uri", "artifacts", "metadata", "user_id"} {
		if _, ok := got[name]; !ok {
			t.Errorf("job lacks field %s", name)
		}
	}

	pages := []struct {
		query     string
		wantLen   int
		wantTotal int
		page      int
		pageSize  int
		hasMore   bool
	}{
		{"", 5, 5, 1, 50, false},
		{"page=1&page_size=2", 2, 5, 1, 2, true},
		{"page=2&page_size=2", 2, 5, 2, 2, true},
		{"page=3&page_size=2", 1, 5, 3, 2, false},
		{"page=4&page_size=2", 0, 5, 4, 2, false},
		{"page_size=100", 5, 5, 1, 100, false},
		{"job_type=rtp", 2, 2, 1, 50, false},
		{"job_type=ion_implant&status=queued", 3, 3, 1, 50, false},
	}
	for _, tt := range pages {
		t.Run("list_"+tt.query, func(t *testing.T) {
			res := h.do(t, http.MethodGet, "/api/jobs?"+tt.query, tok, "")
			var got struct {
				Jobs     []map[string]any
				Total    int
				Page     int
				PageSize int  `json:"page_size"`
				HasMore  bool `json:"has_more"`
			}
			if err := json.Unmarshal(res.Body, &got); err != nil || res.Status != http.StatusOK {
				t.Fatalf("GET /api/jobs?%s = %d %s", tt.query, res.Status, res.Body)
			}
			if len(got.Jobs) != tt.wantLen || got.Total != tt.wantTotal || got.Page != tt.page ||
				got.PageSize != tt.pageSize || got.HasMore != tt.hasMore {
				t.Errorf("GET /api/jobs?%s = %d jobs, total %d, page %d, size %d, has_more %v; want %d, %d, %d, %d, %v",
					tt.query, len(got.Jobs), got.Total, got.Page, got.PageSize, got.HasMore,
					tt.wantLen, tt.wantTotal, tt.page, tt.pageSize, tt.hasMore)
			}
			if got.Jobs == nil {
				t.Error("jobs is null, want []")
			}
		})
	}

	bad := []struct{ query, field string }{
		{"page=0", "page"}, {"page=-1", "page"}, {"page=x", "page"}, {"page_size=0", "page_size"},
		{"page_size=101", "page_size"}, {"job_type=welding", "job_type"}, {"status=done", "status"},
	}
	for _, tt := range bad {
		t.Run("bad_"+tt.query, func(t *testing.T) {
			res := h.do(t, http.MethodGet, "/api/jobs?"+tt.query, tok, "")
			if res.Status != http.StatusUnprocessableEntity {
				t.Fatalf("GET /api/jobs?%s = %d, want 422", tt.query, res.Status)
			}
			if e := res.Err(t); e.Fields[0].Field != tt.field {
				t.Errorf("fields = %+v, want %s", e.Fields, tt.field)
			}
		})
	}
}

func TestJobCommands(t *testing.T) {
	h := newHarness(t)
	h.b.addRun(projections.Run{RunID: "ION-20260101-00000001", JobID: "job-000000000001", OrgID: "org-1", Kind: "ion", Status: "running"})
	tok := token(t, RoleAdmin, "org-1")
	for _, name := range []string{"cancel", "pause", "resume", "retry"} {
		t.Run(name, func(t *testing.T) {
			res := h.do(t, http.MethodPost, "/api/jobs/job-000000000001/"+name, tok, `{"reason":"because"}`)
			if res.Status != http.StatusAccepted {
				t.Fatalf("POST %s = %d, want 202; body %s", name, res.Status, res.Body)
			}
			cmd := h.b.lastCommand(t)
			if cmd.Name != name || cmd.Cmd.RunID != "ION-20260101-00000001" || cmd.Cmd.JobID != "job-000000000001" || cmd.Cmd.Reason != "because" ||
				cmd.Cmd.Meta.OrgID != "org-1" || cmd.Cmd.Meta.RequestID == "" {
				t.Errorf("command = %+v, want %s of ION-20260101-00000001/job-1 with reason and metadata", cmd, name)
			}
			got := res.JSON(t)
			if got["run_id"] != "ION-20260101-00000001" || got["message"] == "" || got["position"] == 0.0 {
				t.Errorf("body = %v", got)
			}
			if name == "retry" && got["job_id"] != "job-00000000e7e1" {
				t.Errorf("retry job_id = %v, want the new job", got["job_id"])
			}
		})
	}
	t.Run("conflict", func(t *testing.T) {
		h.b.setErr(&actors.StateError{Command: "retry", State: "running", Reason: "only a failed or cancelled job can be retried"})
		defer h.b.setErr(nil)
		res := h.do(t, http.MethodPost, "/api/jobs/job-000000000001/retry", tok, "")
		if e := res.Err(t); res.Status != http.StatusConflict || e.Code != CodeConflict ||
			!strings.Contains(e.Message, "only a failed or cancelled job can be retried") {
			t.Errorf("retry of a running job = %d %+v, want 409 with the reason", res.Status, e)
		}
	})
	t.Run("malformed_body", func(t *testing.T) {
		res := h.do(t, http.MethodPost, "/api/jobs/job-000000000001/cancel", tok, `{"reason":`)
		if e := res.Err(t); res.Status != http.StatusUnprocessableEntity || e.Fields[0].Field != "body" {
			t.Errorf("cancel with malformed body = %d %+v, want 422 naming body", res.Status, e)
		}
	})
}

func runLog(t *testing.T) []events.Record {
	t.Helper()
	md := events.Metadata{OrgID: "org-1", UserID: "u-1"}
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var recs []events.Record
	add := func(p events.Payload) {
		ev, err := events.New(p, md)
		if err != nil {
			t.Fatalf("events.New: %v", err)
		}
		n := uint64(len(recs))
		recs = append(recs, events.Record{ID: ev.ID, Stream: "run-ION-20260101-00000001", Revision: n, Position: 100 + n,
			Type: ev.Type, Time: at.Add(time.Duration(n) * time.Second), Data: ev.Data, Metadata: md})
	}
	add(events.RunRequested{RunID: "ION-20260101-00000001", JobID: "job-000000000001", Kind: "ion", Priority: 1, ToolID: "IMP-01"})
	add(events.RunQueued{JobID: "job-000000000001", Queue: "ion"})
	add(events.RunStarted{JobID: "job-000000000001", Seed: 42})
	add(events.RunPhaseChanged{JobID: "job-000000000001", Name: "Validation", Progress: 5})
	add(events.TelemetryRecorded{JobID: "job-000000000001", Samples: map[string][]float64{"time_s": make([]float64, 10)},
		Progress: 21, CurrentStep: "Implanting"})
	add(events.RunFailed{JobID: "job-000000000001", Error: "beam arc", Step: 30})
	add(events.RunRetried{JobID: "job-000000000002", FromJobID: "job-000000000001", Seed: 7})
	add(events.RunStarted{JobID: "job-000000000002", Seed: 7})
	add(events.RunCompleted{JobID: "job-000000000002", DurationS: 12.5})
	return recs
}

func TestJobLogs(t *testing.T) {
	store := &logStore{stream: "run-ION-20260101-00000001", recs: runLog(t)}
	h := newHarness(t, func(_ *Config, d *Deps) { d.Store = store })
	h.b.addRun(projections.Run{RunID: "ION-20260101-00000001", JobID: "job-000000000001", OrgID: "org-1", Kind: "ion", Status: "failed"})
	tok := token(t, RoleEngineer, "org-1")

	res := h.do(t, http.MethodGet, "/api/jobs/job-000000000001/logs", tok, "")
	if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET logs = %d %q; body %s", res.Status, res.Header.Get("Content-Type"), res.Body)
	}
	lines := strings.Split(strings.TrimSpace(string(res.Body)), "\n")
	want := []string{
		"2026-01-01T12:00:00.000Z [0] RunRequested: ion run ION-20260101-00000001 requested by u-1 (job job-000000000001, priority 1, tool IMP-01)",
		"2026-01-01T12:00:01.000Z [1] RunQueued: queued in ion",
		"2026-01-01T12:00:02.000Z [2] RunStarted: attempt 1 started (seed 42)",
		"2026-01-01T12:00:03.000Z [3] RunPhaseChanged: Validation (5%)",
		"2026-01-01T12:00:04.000Z [4] TelemetryRecorded: 10 telemetry samples, Implanting (21.0%)",
		"2026-01-01T12:00:05.000Z [5] RunFailed: failed at step 30: beam arc",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("text log =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	res = h.do(t, http.MethodGet, "/api/jobs/job-000000000001/logs", tok, "", "Accept", "application/x-ndjson")
	if ct := res.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
	}
	sc := bufio.NewScanner(bytes.NewReader(res.Body))
	var n int
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("ndjson line %q: %v", sc.Text(), err)
		}
		if l.Type == "" || l.Message == "" || l.Time.IsZero() || len(l.Data) == 0 {
			t.Errorf("ndjson line %+v lacks fields", l)
		}
		n++
	}
	if n != len(want) {
		t.Errorf("ndjson lines = %d, want %d", n, len(want))
	}

	t.Run("viewer_forbidden", func(t *testing.T) {
		res := h.do(t, http.MethodGet, "/api/jobs/job-000000000001/logs", token(t, RoleViewer, "org-1"), "")
		if res.Status != http.StatusForbidden {
			t.Errorf("viewer GET logs = %d, want 403", res.Status)
		}
	})
	t.Run("no_store", func(t *testing.T) {
		h := newHarness(t)
		h.b.addRun(projections.Run{RunID: "ION-20260101-00000001", JobID: "job-000000000001", OrgID: "org-1", Kind: "ion"})
		res := h.do(t, http.MethodGet, "/api/jobs/job-000000000001/logs", tok, "")
		if res.Status != http.StatusServiceUnavailable {
			t.Errorf("GET logs without a store = %d, want 503", res.Status)
		}
	})
}
