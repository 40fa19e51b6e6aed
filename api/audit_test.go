package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

// TestAuditTrail: for a run, the audit query says who created, paused,
// resumed, cancelled and retried it and when, with the denied attempts;
// all of it scoped to the organisation, paged with an opaque cursor.
func TestAuditTrail(t *testing.T) {
	st := newSecStack(t)
	rid := func(id string) []string { return []string{HeaderRequestID, id} }
	hdr := func(role Role, org, reqID string) []string { return append(as(t, role, org), rid(reqID)...) }

	res := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":100000}`,
		append(hdr(RoleEngineer, "org-1", "req-create"), HeaderCorrelationID, "corr-1")...)
	if res.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", res.Status, res.Body)
	}
	created := res.JSON(t)
	runID, jobID := created["run_id"].(string), created["job_id"].(string)
	st.waitRun(t, "org-1", runID, projections.StatusRunning)

	steps := []struct {
		method, path string
		role         Role
		org, reqID   string
		want         int
	}{
		{http.MethodPost, "/api/jobs/" + jobID + "/pause", RoleOperator, "org-1", "req-pause", 202},
		{http.MethodPost, "/api/jobs/" + jobID + "/resume", RoleOperator, "org-1", "req-resume", 202},
		{http.MethodDelete, "/api/ion/runs/" + runID, RoleViewer, "org-1", "req-denied", 403},
		{http.MethodDelete, "/api/ion/runs/" + runID, RoleAdmin, "org-2", "req-probe", 404},
		{http.MethodDelete, "/api/ion/runs/" + runID, RoleOperator, "org-1", "req-cancel", 202},
		{http.MethodPost, "/api/jobs/" + jobID + "/retry", RoleEngineer, "org-1", "req-retry", 202},
	}
	var last string
	for _, s := range steps {
		res := st.do(t, s.method, s.path, "", hdr(s.role, s.org, s.reqID)...)
		if res.Status != s.want {
			t.Fatalf("%s %s as %s of %s = %d %s, want %d", s.method, s.path, s.role, s.org, res.Status, res.Body, s.want)
		}
		if s.method == http.MethodDelete && s.want == 202 {
			st.waitRun(t, "org-1", runID, projections.StatusCancelled)
		}
		last = res.Header.Get(HeaderPosition)
	}

	type row struct{ Action, User, Role, Request string }
	rows := func(es []projections.AuditEntry) []row {
		var out []row
		for _, e := range es {
			out = append(out, row{e.Action, e.UserID, e.Role, e.RequestID})
		}
		return out
	}
	entries := st.auditEntries(t, "org-1", "run_id="+runID, last)
	want := []row{
		{"created", "u-engineer", "engineer", "req-create"},
		{"paused", "u-operator", "operator", "req-pause"},
		{"resumed", "u-operator", "operator", "req-resume"},
		{"access_denied", "u-viewer", "viewer", "req-denied"},
		{"cancel_requested", "u-operator", "operator", "req-cancel"},
		{"cancelled", "u-operator", "operator", "req-cancel"},
		{"retried", "u-engineer", "engineer", "req-retry"},
	}
	if diff := cmp.Diff(want, rows(entries)); diff != "" {
		t.Errorf("audit of run %s (-want +got):\n%s", runID, diff)
	}
	for i, e := range entries {
		if e.Time.IsZero() || e.RunID != runID || e.OrgID != "org-1" || (i > 0 && e.Time.Before(entries[i-1].Time)) {
			t.Errorf("entry %d = %+v, want a time, run %s and org-1, in order", i, e, runID)
		}
	}
	if entries[0].CorrelationID != "corr-1" || entries[6].JobID == jobID || entries[6].Details["from_job_id"] != jobID {
		t.Errorf("created %+v / retried %+v: want the correlation id and the new job from %s", entries[0], entries[6], jobID)
	}

	// The prober's organisation sees nothing of the run, not even its probe.
	if probe := st.auditEntries(t, "org-2", "run_id="+runID, ""); len(probe) != 0 {
		t.Errorf("org-2's audit of run %s = %+v, want nothing", runID, probe)
	}

	// Filters.
	if got := rows(st.auditEntries(t, "org-1", "user_id=u-operator", "")); len(got) != 4 {
		t.Errorf("user_id=u-operator: %v, want 4 entries", got)
	}
	if got := st.auditEntries(t, "org-1", "type=RunPaused", ""); len(got) != 1 || got[0].Action != "paused" {
		t.Errorf("type=RunPaused: %+v", got)
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
	if got := st.auditEntries(t, "org-1", "since="+future, ""); len(got) != 0 {
		t.Errorf("since an hour from now: %+v, want none", got)
	}
	if got := st.auditEntries(t, "org-1", "until="+future+"&run_id="+runID, ""); len(got) != len(want) {
		t.Errorf("until an hour from now: %d entries, want %d", len(got), len(want))
	}

	// Paging with the cursor gives the same entries, each once.
	var paged []projections.AuditEntry
	cursor := ""
	for i := 0; ; i++ {
		q := "run_id=" + runID + "&limit=3"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		res := st.do(t, http.MethodGet, "/api/audit?"+q, "", as(t, RoleEngineer, "org-1")...)
		var page auditPage
		if err := json.Unmarshal(res.Body, &page); err != nil || res.Status != 200 {
			t.Fatalf("GET /api/audit?%s = %d %s", q, res.Status, res.Body)
		}
		paged = append(paged, page.Entries...)
		if !page.HasMore {
			break
		}
		if i > 5 || page.NextCursor == "" {
			t.Fatalf("page %d: has_more without progress: %s", i, res.Body)
		}
		cursor = page.NextCursor
	}
	if diff := cmp.Diff(entries, paged); diff != "" {
		t.Errorf("paged audit differs (-all +paged):\n%s", diff)
	}

	for _, q := range []string{"cursor=bm9wZQ", "cursor=%%%", "run_id=ION-1", "type=everything", "limit=0", "since=yesterday"} {
		if res := st.do(t, http.MethodGet, "/api/audit?"+q, "", as(t, RoleAdmin, "org-1")...); res.Status != http.StatusUnprocessableEntity {
			t.Errorf("GET /api/audit?%s = %d, want 422", q, res.Status)
		}
	}

	// Every command's events carry who, the request and the correlation.
	recs, err := st.store.ReadStream(t.Context(), events.RunStream(runID), events.Forwards, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		typ := events.BaseType(rec.Type)
		if !slices.Contains([]string{events.TypeRunPaused, events.TypeRunResumed, events.TypeRunCancelRequested,
			events.TypeRunCancelled, events.TypeRunRetried}, typ) {
			continue
		}
		md := rec.Metadata
		if md.OrgID != "org-1" || md.UserID == "" || md.Role == "" || md.RequestID == "" || md.CorrelationID == "" ||
			md.CausationID == "" || md.Node == "" {
			t.Errorf("%s metadata = %+v, want org, user, role, request, correlation, causation and node", typ, md)
		}
	}

	// org-2's probe is recorded in org-1's audit when its window closes
	// (here: at shutdown), naming org-2.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := st.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	head, _ := strconv.ParseUint(st.head(t), 10, 64)
	if err := st.runner.WaitFor(ctx, head); err != nil {
		t.Fatal(err)
	}
	probes, _ := st.audit.Entries(projections.AuditFilter{OrgID: "org-1", RunID: runID, Type: "access_denied"})
	if len(probes) != 2 || probes[1].UserID != "u-admin" || probes[1].RequestID != "req-probe" ||
		probes[1].Details["from_org"] != "org-2" || probes[1].Details["status"] != float64(404) {
		t.Errorf("org-1's denials of run %s = %+v, want the viewer's 403 and org-2's admin's 404 probe", runID, probes)
	}
}
