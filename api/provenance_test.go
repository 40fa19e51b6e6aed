package api

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// TestWhatIfAndMaintenanceAudited: a what-if is audited (who, which
// setting, which range) in the organisation's audit stream and writes
// nothing to the runs' logs; a maintenance window is recorded by an
// engineer, refused to an operator, audited, and shows in the tool's E10
// timeline as scheduled downtime that availability does not count.
func TestWhatIfAndMaintenanceAudited(t *testing.T) {
	st := newSecStack(t)
	r := st.createRun(t, process.KindIon, "org-1", 3, projections.StatusCompleted)
	logLen := func() int {
		recs, err := st.store.ReadStream(context.Background(), events.RunStream(r.RunID), events.Forwards, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	before := logLen()

	res := st.do(t, http.MethodPost, "/api/r2r/what-if", `{"setting":{"lambda":0.5},"run_ids":["`+r.RunID+`"],"baseline":5}`,
		append(as(t, RoleEngineer, "org-1"), HeaderRequestID, "req-whatif")...)
	if res.Status != http.StatusOK {
		t.Fatalf("what-if = %d %s", res.Status, res.Body)
	}
	replayed := float64(len(res.JSON(t)["runs"].([]any)))
	if got := logLen(); got != before {
		t.Errorf("the run's log has %d events after a what-if, had %d", got, before)
	}
	entries := st.auditEntries(t, "org-1", "type=what_if", res.Header.Get(HeaderPosition))
	if len(entries) != 1 {
		t.Fatalf("what-if audit entries = %+v, want 1", entries)
	}
	e := entries[0]
	setting, _ := e.Details["setting"].(map[string]any)
	ids, _ := e.Details["run_ids"].([]any)
	if e.UserID != "u-engineer" || e.Role != "engineer" || e.RequestID != "req-whatif" || e.Stream != events.AuditStream("org-1") ||
		setting["lambda"] != 0.5 || len(ids) != 1 || ids[0] != r.RunID || e.Details["baseline"] != 5.0 || e.Details["runs"] != replayed {
		t.Errorf("what-if audit entry = %+v, want u-engineer's λ=0.5 over %s (baseline 5, %v runs replayed)", e, r.RunID, replayed)
	}
	if other := st.auditEntries(t, "org-2", "type=what_if", ""); len(other) != 0 {
		t.Errorf("org-2 sees org-1's what-if: %+v", other)
	}

	// Maintenance of IMP-07 over the middle five minutes of a 20-minute period.
	now := time.Now().UTC().Truncate(time.Second)
	since, from, until := now.Add(-20*time.Minute), now.Add(-10*time.Minute), now.Add(-5*time.Minute)
	body := `{"from":"` + from.Format(time.RFC3339) + `","until":"` + until.Format(time.RFC3339) + `","reason":"source change"}`
	if res := st.do(t, http.MethodPost, "/api/tools/IMP-07/maintenance", body, as(t, RoleOperator, "org-1")...); res.Status != http.StatusForbidden {
		t.Errorf("maintenance as operator = %d %s, want 403", res.Status, res.Body)
	}
	for _, bad := range []string{`{"from":"` + until.Format(time.RFC3339) + `","until":"` + from.Format(time.RFC3339) + `","reason":"x"}`,
		`{"from":"yesterday","until":"` + until.Format(time.RFC3339) + `","reason":"x"}`, `{"from":"` + from.Format(time.RFC3339) + `","until":"` + until.Format(time.RFC3339) + `"}`} {
		if res := st.do(t, http.MethodPost, "/api/tools/IMP-07/maintenance", bad, as(t, RoleEngineer, "org-1")...); res.Status != http.StatusUnprocessableEntity {
			t.Errorf("maintenance %s = %d %s, want 422", bad, res.Status, res.Body)
		}
	}
	res = st.do(t, http.MethodPost, "/api/tools/IMP-07/maintenance", body, as(t, RoleEngineer, "org-1")...)
	if res.Status != http.StatusCreated {
		t.Fatalf("maintenance = %d %s", res.Status, res.Body)
	}
	id, _ := res.JSON(t)["maintenance_id"].(string)
	entries = st.auditEntries(t, "org-1", "type=maintenance_scheduled", res.Header.Get(HeaderPosition))
	if len(entries) != 1 || entries[0].UserID != "u-engineer" || entries[0].Details["tool_id"] != "IMP-07" ||
		entries[0].Details["reason"] != "source change" || entries[0].Details["maintenance_id"] != id {
		t.Errorf("maintenance audit = %+v, want u-engineer's window %s of IMP-07", entries, id)
	}

	res = st.do(t, http.MethodGet, "/api/tools/IMP-07/timeline?since="+since.Format(time.RFC3339)+"&until="+now.Format(time.RFC3339), "",
		as(t, RoleViewer, "org-1")...)
	if res.Status != http.StatusOK {
		t.Fatalf("timeline = %d %s", res.Status, res.Body)
	}
	var tl projections.E10Timeline
	if err := json.Unmarshal(res.Body, &tl); err != nil {
		t.Fatal(err)
	}
	want := []string{projections.E10Standby, projections.E10ScheduledDown, projections.E10Standby}
	if len(tl.Segments) != 3 || !tl.Segments[1].Start.Equal(from) || !tl.Segments[1].End.Equal(until) {
		t.Fatalf("timeline segments = %+v, want standby, scheduled down %s–%s, standby", tl.Segments, from, until)
	}
	for i, s := range tl.Segments {
		if s.State != want[i] {
			t.Errorf("segment %d = %s, want %s", i, s.State, want[i])
		}
	}
	if tl.Seconds[projections.E10ScheduledDown] != 300 || tl.TotalSeconds != 1200 || tl.Availability != 1 || tl.Uptime != 0.75 {
		t.Errorf("timeline figures = %v s down of %v, availability %v, uptime %v; want 300 of 1200, 1, 0.75",
			tl.Seconds[projections.E10ScheduledDown], tl.TotalSeconds, tl.Availability, tl.Uptime)
	}
	if res := st.do(t, http.MethodGet, "/api/tools/IMP-07/timeline?since="+since.Format(time.RFC3339)+"&until="+now.Format(time.RFC3339), "",
		as(t, RoleViewer, "org-2")...); res.Status != http.StatusOK || len(res.JSON(t)["segments"].([]any)) != 1 {
		t.Errorf("org-2's IMP-07 timeline = %d %s, want one standby segment", res.Status, res.Body)
	}
}
