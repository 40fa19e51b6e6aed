package api

import (
	"github.com/spectra-fab/spectra/events/eventstest"

	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

const ionRecipe = `{"species":"P","energy_kev":40.0,"dose_atoms_cm2":1e15,"tilt_deg":7.0,"twist_deg":0.0,` +
	`"beam_current_ma":5.0,"scan_speed_mm_s":50.0,"wafer_diameter_mm":300,"wafer_id":"W12345","lot_id":"LOT-001"}`

func TestCreateRun(t *testing.T) {
	h := newHarness(t)
	body := `{"species":"P","energy_kev":40,"tool_id":"IMP-01","priority":5}`
	res := h.do(t, http.MethodPost, "/api/ion/runs", token(t, RoleEngineer, "org-1"), body,
		"Idempotency-Key", "key-1", "X-Request-ID", "req-1", "X-Correlation-ID", "corr-1")
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /api/ion/runs status = %d, want 201; body %s", res.Status, res.Body)
	}
	got := res.JSON(t)
	runID, _ := got["run_id"].(string)
	if got["status"] != "queued" || got["job_id"] == "" || runID == "" || got["created_at"] == nil {
		t.Errorf("POST /api/ion/runs body = %v, want run_id, job_id, status queued, created_at", got)
	}
	if want := "Ion implantation run " + runID + " created and queued"; got["message"] != want {
		t.Errorf("message = %q, want %q", got["message"], want)
	}
	pos, _ := got["position"].(float64)
	if hdr := res.Header.Get(HeaderPosition); hdr != strconv.Itoa(int(pos)) || pos == 0 {
		t.Errorf("%s = %q, body position %v: want equal and non-zero", HeaderPosition, hdr, got["position"])
	}
	if loc := res.Header.Get("Location"); loc != "/api/ion/runs/"+runID {
		t.Errorf("Location = %q, want /api/ion/runs/%s", loc, runID)
	}

	c := h.b.lastCreate(t)
	want := actors.CreateRun{
		Kind: process.KindIon, Recipe: json.RawMessage(body), ToolID: "IMP-01", Priority: 5, IdempotencyKey: "10:u-engineer:key-1", // scoped to the principal
		Meta: events.Metadata{OrgID: "org-1", UserID: "u-engineer", Role: "engineer", RequestID: "req-1",
			CorrelationID: "corr-1", Node: "node-test"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("CreateRun command mismatch (-want +got):\n%s", diff)
	}

	// Read-your-writes: the fake's read models apply the run only when the
	// API waits for its position, so this GET fails if the POST did not.
	res = h.do(t, http.MethodGet, "/api/ion/runs/"+runID, token(t, RoleViewer, "org-1"), "")
	if res.Status != http.StatusOK {
		t.Fatalf("GET right after POST status = %d, want 200; body %s", res.Status, res.Body)
	}
	if got := res.JSON(t); got["tool_id"] != "IMP-01" || got["status"] != "queued" {
		t.Errorf("GET run = %v, want tool_id IMP-01, status queued", got)
	}
}

func TestCreateRunCorrelationDefaultsToRequestID(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, http.MethodPost, "/api/rtp/runs", token(t, RoleAdmin, "org-1"), `{"segments":[]}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /api/rtp/runs status = %d, want 201; body %s", res.Status, res.Body)
	}
	c := h.b.lastCreate(t)
	if c.Kind != process.KindRTP {
		t.Errorf("Kind = %q, want rtp", c.Kind)
	}
	if c.Meta.RequestID == "" || c.Meta.CorrelationID != c.Meta.RequestID {
		t.Errorf("Meta = %+v, want correlation id = request id", c.Meta)
	}
	if got := res.JSON(t)["message"]; !strings.HasPrefix(got.(string), "RTP run RTP-") {
		t.Errorf("message = %q, want RTP run …", got)
	}
}

func TestCreateRunInvalidBody(t *testing.T) {
	h := newHarness(t)
	tok := token(t, RoleEngineer, "org-1")
	tests := []struct {
		name, body, field string
	}{
		{"malformed", `{"species": "P",`, "body"},
		{"not_json", `species=P`, "body"},
		{"array", `[1,2]`, "body"},
		{"string", `"P"`, "body"},
		{"trailing_garbage", `{"species":"P"} x`, "body"},
		{"priority_not_integer", `{"priority":"high"}`, "priority"},
		{"priority_fraction", `{"priority":1.5}`, "priority"},
		{"tool_id_not_string", `{"tool_id":7}`, "tool_id"},
		{"fault_injection_disabled", `{"simulate_fault":{"kind":"transient","at_progress_pct":50}}`, "simulate_fault"},
		{"disturbance_disabled", `{"simulate_disturbance":{"offset_pct":5}}`, "simulate_disturbance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.do(t, http.MethodPost, "/api/ion/runs", tok, tt.body)
			if res.Status != http.StatusUnprocessableEntity {
				t.Fatalf("POST %s status = %d, want 422; body %s", tt.body, res.Status, res.Body)
			}
			e := res.Err(t)
			if e.Code != CodeValidation || len(e.Fields) == 0 || e.Fields[0].Field != tt.field {
				t.Errorf("error = %+v, want validation_failed naming %q", e, tt.field)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		res := h.do(t, http.MethodPost, "/api/ion/runs", tok, "")
		if e := res.Err(t); res.Status != http.StatusUnprocessableEntity || e.Fields[0].Field != "body" {
			t.Errorf("POST empty = %d %+v, want 422 naming body", res.Status, e)
		}
	})
	h.b.mu.Lock()
	n := len(h.b.creates)
	h.b.mu.Unlock()
	if n != 0 {
		t.Errorf("CreateRun called %d times for invalid bodies, want 0", n)
	}
}

func TestCreateRunWithFaultInjection(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Deps) { c.AllowFaultInjection = true })
	tok := token(t, RoleEngineer, "org-1")
	res := h.do(t, http.MethodPost, "/api/ion/runs", tok, `{"simulate_fault":{"kind":"transient","at_progress_pct":40}}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", res.Status, res.Body)
	}
	want := &process.Fault{Kind: process.FaultTransient, AtProgress: 40}
	if diff := cmp.Diff(want, h.b.lastCreate(t).Fault); diff != "" {
		t.Errorf("Fault mismatch (-want +got):\n%s", diff)
	}
	res = h.do(t, http.MethodPost, "/api/ion/runs", tok, `{"simulate_fault":{"kind":"meteor","at_progress_pct":40}}`)
	if e := res.Err(t); res.Status != http.StatusUnprocessableEntity || e.Fields[0].Field != "simulate_fault.kind" {
		t.Errorf("unknown fault kind = %d %+v, want 422 naming simulate_fault.kind", res.Status, e)
	}
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string // substring
	}{
		{"validation", &process.ValidationError{Fields: []process.FieldError{
			{Field: "energy_kev", Value: 500.0, Allowed: "1–200", Message: "energy out of range"},
			{Field: "species", Value: "Xe", Allowed: "B, P, As, BF2, In, Sb", Message: "unknown species"}}},
			422, CodeValidation, "invalid fields"},
		{"wrapped_validation", fmt.Errorf("create run: %w", &process.ValidationError{Fields: []process.FieldError{
			{Field: "energy_kev", Value: 500.0, Allowed: "1–200", Message: "energy out of range"}}}),
			422, CodeValidation, "energy_kev"},
		{"fault_disabled", fmt.Errorf("create: %w", actors.ErrFaultInjectionDisabled), 422, CodeValidation, "fault injection"},
		{"state", &actors.StateError{Command: "cancel", State: "completed", Reason: "run already finished"},
			409, CodeConflict, "run already finished"},
		{"invalid_state", fmt.Errorf("pause: %w", actors.ErrInvalidState), 409, CodeConflict, "state"},
		{"not_found", actors.ErrNotFound, 404, CodeNotFound, "not found"},
		{"unavailable", fmt.Errorf("ask: %w", actors.ErrUnavailable), 503, CodeUnavailable, "unavailable"},
		{"internal", errors.New("nats: connection reset by peer at 10.0.0.7"), 500, CodeInternal, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.b.setErr(tt.err)
			res := h.do(t, http.MethodPost, "/api/ion/runs", token(t, RoleEngineer, "org-1"), ionRecipe)
			if res.Status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", res.Status, tt.wantStatus, res.Body)
			}
			e := res.Err(t)
			if e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("error = %+v, want code %q, message containing %q", e, tt.wantCode, tt.wantMsg)
			}
			if tt.name == "internal" {
				if strings.Contains(string(res.Body), "10.0.0.7") {
					t.Errorf("500 body leaks the cause: %s", res.Body)
				}
				if !strings.Contains(h.logs.String(), "connection reset by peer") {
					t.Errorf("the cause of a 500 was not logged: %s", h.logs.String())
				}
			}
		})
	}

	t.Run("validation_fields", func(t *testing.T) {
		h := newHarness(t)
		h.b.setErr(tests[0].err)
		res := h.do(t, http.MethodPost, "/api/ion/runs", token(t, RoleEngineer, "org-1"), ionRecipe)
		want := []process.FieldError{
			{Field: "energy_kev", Value: 500.0, Allowed: "1–200", Message: "energy out of range"},
			{Field: "species", Value: "Xe", Allowed: "B, P, As, BF2, In, Sb", Message: "unknown species"},
		}
		if diff := cmp.Diff(want, res.Err(t).Fields); diff != "" {
			t.Errorf("fields mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestForbiddenViewerCreatesRun(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, http.MethodPost, "/api/ion/runs", token(t, RoleViewer, "org-1"), ionRecipe)
	if res.Status != http.StatusForbidden {
		t.Fatalf("viewer POST /api/ion/runs status = %d, want 403", res.Status)
	}
	if e := res.Err(t); e.Code != CodeForbidden || !strings.Contains(e.Message, "ion:create_run") {
		t.Errorf("error = %+v, want forbidden naming ion:create_run", e)
	}
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	if len(h.b.creates) != 0 {
		t.Error("CreateRun was called for a viewer")
	}
}

func completedIonRun(org string) projections.Run {
	start := time.Date(2026, 1, 1, 12, 0, 5, 0, time.UTC)
	end := start.Add(325 * time.Second)
	dur := 325.0
	return projections.Run{
		RunID: "ION-20260101-A1B2C3D4", JobID: "job-0000000abc12", OrgID: org, Kind: "ion", UserID: "u-1",
		Status: projections.StatusCompleted, Progress: 100, CurrentStep: "Completed",
		Recipe:    json.RawMessage(ionRecipe),
		CreatedAt: start.Add(-5 * time.Second), StartedAt: &start, CompletedAt: &end, DurationSeconds: &dur,
		SPCAlertsCount: 2, LogsURI: "/api/jobs/job-0000000abc12/logs",
		Artifacts: []projections.Artifact{{Name: "telemetry.csv", ContentType: "text/csv", Size: 1024,
			URI: "/api/jobs/job-0000000abc12/artifacts/telemetry.csv"}},
		Result: eventstest.JSON(map[string]any{
			"final_dose_atoms_cm2": 1.02e15,
			"dose_error_pct":       2.0,
			"vm_prediction": map[string]any{"sheet_resistance_ohm_sq": 250.0, "junction_depth_um": 0.15,
				"activation_pct": 85.0},
			"status": "bogus", // a result never hides a field of the run
		}),
	}
}

func TestRunResultFlattened(t *testing.T) {
	h := newHarness(t)
	h.b.addRun(completedIonRun("org-1"))
	rtp := projections.Run{RunID: "RTP-20260101-A9B8C7D6", OrgID: "org-1", Kind: "rtp", Status: "completed",
		Result: eventstest.JSON(map[string]any{"final_temp_c": 1000.2, "temp_error_c": 0.2, "max_overshoot_c": 3.5,
			"avg_ramp_error_c": 1.2, "thermal_budget": 5.2e5,
			"vm_prediction": map[string]any{"activation_pct": 88.0, "oxide_thickness_nm": 5.0}})}
	h.b.addRun(rtp)
	tok := token(t, RoleViewer, "org-1")

	res := h.do(t, http.MethodGet, "/api/ion/runs/ION-20260101-A1B2C3D4", tok, "")
	if res.Status != http.StatusOK {
		t.Fatalf("GET ion run status = %d; body %s", res.Status, res.Body)
	}
	got := res.JSON(t)
	for name, want := range map[string]any{
		"run_id": "ION-20260101-A1B2C3D4", "job_id": "job-0000000abc12", "status": "completed", "progress": 100.0,
		"current_step": "Completed", "final_dose_atoms_cm2": 1.02e15, "dose_error_pct": 2.0,
		"duration_seconds": 325.0, "spc_alerts_count": 2.0, "logs_uri": "/api/jobs/job-0000000abc12/logs",
		"created_at": "2026-01-01T12:00:00Z", "started_at": "2026-01-01T12:00:05Z",
		"completed_at": "2026-01-01T12:05:30Z",
	} {
		if diff := cmp.Diff(want, got[name]); diff != "" {
			t.Errorf("GET ion run %s mismatch (-want +got):\n%s", name, diff)
		}
	}
	vm, _ := got["vm_prediction"].(map[string]any)
	if vm["junction_depth_um"] != 0.15 || vm["sheet_resistance_ohm_sq"] != 250.0 || vm["activation_pct"] != 85.0 {
		t.Errorf("vm_prediction = %v", got["vm_prediction"])
	}
	if recipe, _ := got["recipe"].(map[string]any); recipe["species"] != "P" {
		t.Errorf("recipe = %v, want the recipe object", got["recipe"])
	}
	if arts, _ := got["artifacts"].([]any); len(arts) != 1 {
		t.Errorf("artifacts = %v, want one", got["artifacts"])
	}

	res = h.do(t, http.MethodGet, "/api/rtp/runs/RTP-20260101-A9B8C7D6", tok, "")
	got = res.JSON(t)
	for _, name := range []string{"final_temp_c", "temp_error_c", "max_overshoot_c", "avg_ramp_error_c", "thermal_budget", "vm_prediction"} {
		if _, ok := got[name]; !ok {
			t.Errorf("GET rtp run lacks %s: %s", name, res.Body)
		}
	}
	if arts, ok := got["artifacts"].([]any); !ok || len(arts) != 0 {
		t.Errorf("artifacts = %v, want [] (never null)", got["artifacts"])
	}

	// The list shows the same flattened view.
	res = h.do(t, http.MethodGet, "/api/ion/runs", tok, "")
	runs, _ := res.JSON(t)["runs"].([]any)
	if len(runs) != 1 || runs[0].(map[string]any)["dose_error_pct"] != 2.0 {
		t.Errorf("GET /api/ion/runs runs = %v, want the one ion run, flattened", runs)
	}
}

func TestRunOfOtherKindNotFound(t *testing.T) {
	h := newHarness(t)
	h.b.addRun(completedIonRun("org-1"))
	tok := token(t, RoleAdmin, "org-1")
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/api/rtp/runs/ION-20260101-A1B2C3D4"},
		{http.MethodDelete, "/api/rtp/runs/ION-20260101-A1B2C3D4"},
	} {
		if res := h.do(t, req.method, req.path, tok, ""); res.Status != http.StatusNotFound {
			t.Errorf("%s %s status = %d, want 404", req.method, req.path, res.Status)
		}
	}
}

func TestOrganisationIsolation(t *testing.T) {
	h := newHarness(t)
	h.b.addRun(completedIonRun("org-2"))
	h.b.addRun(projections.Run{RunID: "ION-20260101-00000001", OrgID: "org-1", Kind: "ion", Status: "running"})
	tok := token(t, RoleAdmin, "org-1")

	tests := []struct {
		name, method, other, missing string
	}{
		{"run", http.MethodGet, "/api/ion/runs/ION-20260101-A1B2C3D4", "/api/ion/runs/ION-20260101-FFFFFFFF"},
		{"run_cancel", http.MethodDelete, "/api/ion/runs/ION-20260101-A1B2C3D4", "/api/ion/runs/ION-20260101-FFFFFFFF"},
		{"job", http.MethodGet, "/api/jobs/job-0000000abc12", "/api/jobs/job-missing"},
		{"job_logs", http.MethodGet, "/api/jobs/job-0000000abc12/logs", "/api/jobs/job-missing/logs"},
		{"job_cancel", http.MethodPost, "/api/jobs/job-0000000abc12/cancel", "/api/jobs/job-missing/cancel"},
		{"job_retry", http.MethodPost, "/api/jobs/job-0000000abc12/retry", "/api/jobs/job-missing/retry"},
		{"job_pause", http.MethodPost, "/api/jobs/job-0000000abc12/pause", "/api/jobs/job-missing/pause"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := h.do(t, tt.method, tt.other, tok, "", "X-Request-ID", "same-id")
			missing := h.do(t, tt.method, tt.missing, tok, "", "X-Request-ID", "same-id")
			if other.Status != http.StatusNotFound || missing.Status != http.StatusNotFound {
				t.Fatalf("%s %s = %d, missing = %d, want 404 both", tt.method, tt.other, other.Status, missing.Status)
			}
			if string(other.Body) != string(missing.Body) {
				t.Errorf("another org's body %s differs from a missing one's %s", other.Body, missing.Body)
			}
		})
	}
	if n := len(h.b.commands); n != 0 {
		t.Errorf("%d commands reached the actor layer for another org's run", n)
	}

	res := h.do(t, http.MethodGet, "/api/ion/runs", tok, "")
	if got := res.JSON(t); got["total"] != 1.0 {
		t.Errorf("GET /api/ion/runs total = %v, want 1 (only org-1's run)", got["total"])
	}
	res = h.do(t, http.MethodGet, "/api/jobs", tok, "")
	if got := res.JSON(t); got["total"] != 1.0 {
		t.Errorf("GET /api/jobs total = %v, want 1 (only org-1's job)", got["total"])
	}
}

func TestRunListPagination(t *testing.T) {
	h := newHarness(t)
	for i := range 7 {
		h.b.addRun(projections.Run{RunID: fmt.Sprintf("ION-20260101-%08d", i), OrgID: "org-1", Kind: "ion",
			Status: []string{"completed", "running"}[i%2]})
	}
	tok := token(t, RoleViewer, "org-1")

	bad := []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=101", "limit"}, {"limit=abc", "limit"}, {"limit=-5", "limit"},
		{"offset=-1", "offset"}, {"offset=x", "offset"}, {"status=exploded", "status"},
	}
	for _, tt := range bad {
		t.Run(tt.query, func(t *testing.T) {
			res := h.do(t, http.MethodGet, "/api/ion/runs?"+tt.query, tok, "")
			if res.Status != http.StatusUnprocessableEntity {
				t.Fatalf("GET ?%s status = %d, want 422", tt.query, res.Status)
			}
			if e := res.Err(t); e.Fields[0].Field != tt.field {
				t.Errorf("GET ?%s fields = %+v, want %s", tt.query, e.Fields, tt.field)
			}
		})
	}

	good := []struct {
		query                     string
		wantLen, wantTotal, limit int
		offset                    int
	}{
		{"", 7, 7, 50, 0},
		{"limit=100", 7, 7, 100, 0},
		{"limit=3&offset=3", 3, 7, 3, 3},
		{"limit=3&offset=6", 1, 7, 3, 6},
		{"offset=10", 0, 7, 50, 10},
		{"status=running", 3, 3, 50, 0},
	}
	for _, tt := range good {
		t.Run("ok_"+tt.query, func(t *testing.T) {
			res := h.do(t, http.MethodGet, "/api/ion/runs?"+tt.query, tok, "")
			var got struct {
				Runs                 []map[string]any
				Total, Limit, Offset int
			}
			if err := json.Unmarshal(res.Body, &got); err != nil || res.Status != 200 {
				t.Fatalf("GET ?%s = %d %s", tt.query, res.Status, res.Body)
			}
			if len(got.Runs) != tt.wantLen || got.Total != tt.wantTotal || got.Limit != tt.limit || got.Offset != tt.offset {
				t.Errorf("GET ?%s = %d runs, total %d, limit %d, offset %d; want %d, %d, %d, %d", tt.query,
					len(got.Runs), got.Total, got.Limit, got.Offset, tt.wantLen, tt.wantTotal, tt.limit, tt.offset)
			}
			if got.Runs == nil {
				t.Errorf("runs is null, want []")
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	h := newHarness(t)
	h.b.addRun(projections.Run{RunID: "RTP-20260101-00000001", JobID: "job-000000000001", OrgID: "org-1", Kind: "rtp", Status: "running"})
	res := h.do(t, http.MethodDelete, "/api/rtp/runs/RTP-20260101-00000001?reason=wrong+lot", token(t, RoleOperator, "org-1"), "")
	if res.Status != http.StatusAccepted {
		t.Fatalf("DELETE status = %d, want 202; body %s", res.Status, res.Body)
	}
	cmd := h.b.lastCommand(t)
	if cmd.Name != "cancel" || cmd.Cmd.RunID != "RTP-20260101-00000001" || cmd.Cmd.Reason != "wrong lot" ||
		cmd.Cmd.Meta.UserID != "u-operator" || cmd.Cmd.Meta.OrgID != "org-1" {
		t.Errorf("command = %+v, want cancel of the run with reason and metadata", cmd)
	}
	got := res.JSON(t)
	if got["run_id"] != "RTP-20260101-00000001" || got["position"] == 0.0 || res.Header.Get(HeaderPosition) == "" {
		t.Errorf("DELETE body = %v, header %q", got, res.Header.Get(HeaderPosition))
	}
}
