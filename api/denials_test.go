package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// 10,000 requests with an expired (well-signed) token: the address is
// throttled after a few failures, before the token is even verified, and
// the failures that got through make one AccessDenied event plus one with
// their count, not one fsynced event each.
func TestExpiredTokenFloodAppendsAHandfulOfEvents(t *testing.T) {
	st := newSecStack(t)
	expired := signed(t, jwt.SigningMethodHS256, testSecret, with(validClaims(), "exp", time.Now().Add(-time.Hour).Unix()))
	statuses := map[int]int{}
	for range 10_000 {
		res := st.do(t, http.MethodGet, "/api/jobs", "", bearer(expired)...)
		statuses[res.Status]++
		if res.Status == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
			t.Fatalf("429 without Retry-After")
		}
	}
	if statuses[401] == 0 || statuses[401] > defaultAuthFailuresLimit || statuses[401]+statuses[429] != 10_000 {
		t.Errorf("statuses %v, want at most %d × 401 and the rest 429", statuses, defaultAuthFailuresLimit)
	}
	// Shutdown records the count of the open window.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := st.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := st.store.ReadStream(t.Context(), events.AuditStream("org-1"), events.Forwards, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, rec := range recs {
		p, err := events.Decode(rec)
		if err != nil {
			t.Fatal(err)
		}
		d := p.(*events.AccessDenied)
		total += d.Count
		if d.Status != 401 || d.Address == "" || rec.Metadata.UserID != "u-1" {
			t.Errorf("AccessDenied %+v by %s, want u-1's 401 with its address", d, rec.Metadata.UserID)
		}
	}
	if len(recs) > 3 || total != statuses[401] {
		t.Errorf("audit stream holds %d events counting %d attempts, want at most 3 counting the %d refused with 401",
			len(recs), total, statuses[401])
	}
}

// Another organisation's run answers a command exactly as a missing one
// does: same status and body, no entry in the prober's audit, no moved
// X-Spectra-Position; the owner's audit records the probe.
func TestCrossOrganisationProbeLooksLikeAMiss(t *testing.T) {
	st := newSecStack(t, func(c *Config) { c.DeniedWindow = 200 * time.Millisecond })
	run := st.createRun(t, process.KindIon, "org-1", 100000, projections.StatusRunning)
	// Paused, the run appends nothing: the position moves only if a probe
	// appends (a running one's telemetry moved it under load).
	if _, err := st.svc.PauseRun(t.Context(), actors.RunCommand{RunID: run.RunID,
		Meta: events.Metadata{OrgID: "org-1", UserID: "u-setup", Role: "engineer"}}); err != nil {
		t.Fatalf("PauseRun: %v", err)
	}
	st.waitRun(t, "org-1", run.RunID, projections.StatusPaused)
	missing := "ION-20260101-00000000"
	probe := func(runID string) response {
		return st.do(t, http.MethodDelete, "/api/ion/runs/"+runID, "", append(as(t, RoleAdmin, "org-2"), HeaderRequestID, "req-x")...)
	}
	before := probe(missing)
	foreign := probe(run.RunID)
	after := probe(missing)
	for _, r := range []response{before, foreign, after} {
		if r.Status != http.StatusNotFound {
			t.Fatalf("DELETE as org-2 = %d %s, want 404", r.Status, r.Body)
		}
	}
	if string(foreign.Body) != string(before.Body) {
		t.Errorf("body for another organisation's run %s differs from a missing one's %s", foreign.Body, before.Body)
	}
	for _, h := range []string{HeaderPosition, "Content-Type", "Retry-After", HeaderStale} {
		if got, want := foreign.Header.Get(h), before.Header.Get(h); got != want || got != after.Header.Get(h) {
			t.Errorf("%s: %q for another organisation's run, %q / %q for missing ones", h, got, want, after.Header.Get(h))
		}
	}
	// The owner's audit holds the probe, with the prober's organisation.
	var entries []projections.AuditEntry
	deadline := time.Now().Add(5 * time.Second)
	for len(entries) == 0 && time.Now().Before(deadline) {
		entries = st.auditEntries(t, "org-1", "type=access_denied", st.head(t))
		time.Sleep(10 * time.Millisecond)
	}
	if len(entries) != 1 || entries[0].UserID != "u-admin" || entries[0].Details["from_org"] != "org-2" ||
		entries[0].RunID != run.RunID || entries[0].Details["status"] != float64(404) {
		t.Errorf("org-1's audit = %+v, want org-2's admin's probe of %s", entries, run.RunID)
	}
	if got := st.auditEntries(t, "org-2", "", st.head(t)); len(got) != 0 {
		t.Errorf("org-2's own audit = %+v, want nothing", got)
	}
	if strings.Contains(string(foreign.Body), run.RunID) {
		t.Errorf("the 404 body names the run: %s", foreign.Body)
	}
}
