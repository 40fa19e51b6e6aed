package projections_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

func TestAudit(t *testing.T) {
	var r records
	eng := events.Metadata{OrgID: "org-1", UserID: "u-eng", Role: "engineer", RequestID: "req-1"}
	op := events.Metadata{OrgID: "org-1", UserID: "u-op", Role: "operator", RequestID: "req-2"}
	other := events.Metadata{OrgID: "org-2", UserID: "u-2", Role: "admin", RequestID: "req-3"}
	a := projections.NewAudit()
	var recs []events.Record
	add := func(stream string, md events.Metadata, p events.Payload) {
		rec := r.rec(t, stream, md, p)
		recs = append(recs, rec)
		if err := a.Apply(rec); err != nil {
			t.Fatalf("Apply %T: %v", p, err)
		}
	}
	run := "ION-20260101-00000001"
	add(events.RunStream(run), eng, &events.RunRequested{RunID: run, JobID: "job-000000000001", Kind: "ion"})
	add(events.RunStream(run), eng, &events.RunStarted{JobID: "job-000000000001"}) // not audited
	add(events.RunStream(run), op, &events.RunPaused{JobID: "job-000000000001", Step: 7})
	add(events.RunStream(run), op, &events.RunCancelRequested{JobID: "job-000000000001", Reason: "stop"})
	add(events.RunStream(run), op, &events.RunCancelled{JobID: "job-000000000001", Reason: "stop"})
	add(events.RunStream(run), eng, &events.RunRetried{JobID: "job-000000000002", FromJobID: "job-000000000001"})
	add(events.AuditStream("org-2"), other, &events.AccessDenied{Status: 404, Method: "DELETE",
		Path: "/api/ion/runs/" + run, Reason: "not found", Resource: "run:" + run})
	add("apikey-k1", eng, &events.APIKeyIssued{KeyID: "k1", Name: "ci", Role: "viewer", Hash: "secret-hash"})

	actions := func(es []projections.AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Action+"/"+e.UserID)
		}
		return out
	}
	all, more := a.Entries(projections.AuditFilter{OrgID: "org-1"})
	want := []string{"created/u-eng", "paused/u-op", "cancel_requested/u-op", "cancelled/u-op", "retried/u-eng", "apikey_issued/u-eng"}
	if diff := cmp.Diff(want, actions(all)); diff != "" || more {
		t.Errorf("org-1 entries (-want +got), more %v:\n%s", more, diff)
	}
	for _, e := range all {
		if e.Details["hash"] != nil {
			t.Errorf("entry %+v shows a key hash", e)
		}
	}
	if got, _ := a.Entries(projections.AuditFilter{OrgID: "org-2", RunID: run}); len(got) != 1 || got[0].Action != "access_denied" {
		t.Errorf("org-2 entries for run %s = %+v, want its one probe", run, got)
	}
	if got, _ := a.Entries(projections.AuditFilter{OrgID: "org-1", UserID: "u-op", Type: "RunPaused"}); len(got) != 1 {
		t.Errorf("u-op RunPaused = %+v", got)
	}
	page, more := a.Entries(projections.AuditFilter{OrgID: "org-1", Limit: 4})
	rest, more2 := a.Entries(projections.AuditFilter{OrgID: "org-1", Limit: 4, After: page[len(page)-1].Position})
	if !more || more2 || len(page)+len(rest) != len(all) {
		t.Errorf("pages of 4: %d (more %v) + %d (more %v), want all %d", len(page), more, len(rest), more2, len(all))
	}
	if since, _ := a.Entries(projections.AuditFilter{OrgID: "org-1", Since: all[4].Time}); len(since) != 2 {
		t.Errorf("since the retry: %d entries, want 2", len(since))
	}
	for id, org := range map[string]string{run: "org-1", "job-000000000002": "org-1"} {
		if got, ok := a.Owner(id); !ok || got != org {
			t.Errorf("Owner(%s) = %q, %v; want %s", id, got, ok, org)
		}
	}
	if _, ok := a.Owner("ION-20260101-FFFFFFFF"); ok {
		t.Error("Owner of a missing run reported")
	}

	// Replaying applies nothing twice; a snapshot restores the model.
	for _, rec := range recs {
		_ = a.Apply(rec)
	}
	if again, _ := a.Entries(projections.AuditFilter{OrgID: "org-1"}); len(again) != len(all) {
		t.Errorf("after a replay: %d entries, want %d", len(again), len(all))
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b := projections.NewAudit()
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Entries(projections.AuditFilter{OrgID: "org-1"})
	if diff := cmp.Diff(all, got); diff != "" {
		t.Errorf("restored entries (-want +got):\n%s", diff)
	}
}
