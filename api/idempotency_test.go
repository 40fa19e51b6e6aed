package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

// A repeated Idempotency-Key answers the run as it is now with 200 (201
// only for the first request); a key reused for another body or kind is a
// 422; keys are scoped per principal.
func TestIdempotencyKeyAnswersTheRunAsItIs(t *testing.T) {
	st := newSecStack(t)
	eng := append(as(t, RoleEngineer, "org-1"), HeaderIdempotency, "batch-7")
	first := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":3,"tool_id":"IMP-1"}`, eng...)
	if first.Status != http.StatusCreated {
		t.Fatalf("first create = %d %s, want 201", first.Status, first.Body)
	}
	runID := first.JSON(t)["run_id"].(string)
	st.waitRun(t, "org-1", runID, projections.StatusCompleted)

	// The same body with another layout is the same request.
	again := st.do(t, http.MethodPost, "/api/ion/runs", "{ \"tool_id\": \"IMP-1\",\n \"steps\": 3 }", eng...)
	got := again.JSON(t)
	if again.Status != http.StatusOK || got["run_id"] != runID || got["status"] != projections.StatusCompleted {
		t.Errorf("repeated create = %d %v, want 200 with run %s completed", again.Status, got, runID)
	}

	for _, tt := range []struct{ name, path, body string }{
		{"other_body", "/api/ion/runs", `{"steps":4,"tool_id":"IMP-1"}`},
		{"other_kind", "/api/rtp/runs", `{"steps":3,"tool_id":"IMP-1"}`},
	} {
		res := st.do(t, http.MethodPost, tt.path, tt.body, eng...)
		e := res.Err(t)
		if res.Status != http.StatusUnprocessableEntity || e.Code != CodeValidation || len(e.Fields) != 1 ||
			e.Fields[0].Field != HeaderIdempotency {
			t.Errorf("%s: reused key = %d %s, want 422 naming %s", tt.name, res.Status, res.Body, HeaderIdempotency)
		}
	}

	// Another user of the organisation has keys of its own.
	other := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":3,"tool_id":"IMP-1"}`,
		append(as(t, RoleAdmin, "org-1"), HeaderIdempotency, "batch-7")...)
	if other.Status != http.StatusCreated || other.JSON(t)["run_id"] == runID {
		t.Errorf("another user's create with the same key = %d %s, want 201 and a run of its own", other.Status, other.Body)
	}

	for _, bad := range []string{"has space", "tab\tkey", "ünï"} {
		res := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":3}`, append(as(t, RoleEngineer, "org-1"), HeaderIdempotency, bad)...)
		if res.Status != http.StatusUnprocessableEntity {
			t.Errorf("Idempotency-Key %q = %d, want 422", bad, res.Status)
		}
	}
}

// A create that times out answers 504 with the key a retry finds the run
// by; the retry with it answers the one run.
func TestCreateTimeoutNamesTheKeyToRetryWith(t *testing.T) {
	st := newSecStack(t)
	slow := New(Config{JWTSecret: testSecret, Node: "node-test", CommandTimeout: time.Nanosecond},
		Deps{Commands: st.svc, Queries: projections.JobQueries{Model: st.jobs, Runner: st.runner}, Store: st.store,
			Events: st.store, Audit: st.audit, Credentials: st.sec})
	res := request(t, slow, http.MethodPost, "/api/ion/runs", `{"steps":3}`, as(t, RoleEngineer, "org-1")...)
	var body ErrorBody
	if err := json.Unmarshal(res.Body, &body); err != nil {
		t.Fatal(err)
	}
	key := body.Error.IdempotencyKey
	if res.Status != http.StatusGatewayTimeout || key == "" {
		t.Fatalf("create past its deadline = %d %s, want 504 with an idempotency_key", res.Status, res.Body)
	}
	retry := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":3}`, append(as(t, RoleEngineer, "org-1"), HeaderIdempotency, key)...)
	if retry.Status != http.StatusCreated && retry.Status != http.StatusOK {
		t.Fatalf("retry with %s = %d %s, want the run", key, retry.Status, retry.Body)
	}
	runID := retry.JSON(t)["run_id"].(string)
	again := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":3}`, append(as(t, RoleEngineer, "org-1"), HeaderIdempotency, key)...)
	if again.Status != http.StatusOK || again.JSON(t)["run_id"] != runID {
		t.Errorf("second retry = %d %s, want 200 and run %s", again.Status, again.Body, runID)
	}
	runs, total, err := st.jobs.Runs(t.Context(), projections.RunFilter{OrgID: "org-1", Limit: 10})
	if err != nil || total != 1 {
		t.Errorf("org-1 has %d runs (%v, %v), want exactly 1", total, runs, err)
	}
}

// A key of the server's form (srv-<day>-…) names its run: the create is
// one append, a repetition answers the run with 200, another body or
// kind is a 422, and the run is the same on a later day.
func TestServerFormKeyNamesItsRun(t *testing.T) {
	st := newSecStack(t)
	key := serverKey(time.Date(2026, 12, 3, 23, 59, 0, 0, time.UTC))
	eng := append(as(t, RoleEngineer, "org-1"), HeaderIdempotency, key)
	first := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":3}`, eng...)
	if first.Status != http.StatusCreated {
		t.Fatalf("first create = %d %s, want 201", first.Status, first.Body)
	}
	runID := first.JSON(t)["run_id"].(string)
	if want := "ION-20261203-"; len(runID) != len(want)+8 || runID[:len(want)] != want {
		t.Errorf("run id %s, want %s and 8 hex digits (the key's day)", runID, want)
	}
	again := st.do(t, http.MethodPost, "/api/ion/runs", `{ "steps": 3 }`, eng...)
	if again.Status != http.StatusOK || again.JSON(t)["run_id"] != runID {
		t.Errorf("repeated create = %d %s, want 200 with run %s", again.Status, again.Body, runID)
	}
	for _, tt := range []struct{ name, path, body string }{
		{"other_body", "/api/ion/runs", `{"steps":4}`},
		{"other_kind", "/api/rtp/runs", `{"steps":3}`},
	} {
		other := st.do(t, http.MethodPost, tt.path, tt.body, eng...)
		if e := other.Err(t); other.Status != http.StatusUnprocessableEntity || len(e.Fields) != 1 || e.Fields[0].Field != HeaderIdempotency {
			t.Errorf("%s under the key = %d %s, want 422 naming %s", tt.name, other.Status, other.Body, HeaderIdempotency)
		}
	}
	if _, err := st.store.ReadStream(t.Context(), events.RunStream("RTP"+runID[len("ION"):]), events.Forwards, 0, 0); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("the rtp run the key names: %v, want none (the key is the ion run's)", err)
	}
	// The other way round: a key first used for an rtp run.
	rtpKey := append(as(t, RoleEngineer, "org-1"), HeaderIdempotency, serverKey(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)))
	if res := st.do(t, http.MethodPost, "/api/rtp/runs", `{"steps":3}`, rtpKey...); res.Status != http.StatusCreated {
		t.Fatalf("rtp create = %d %s, want 201", res.Status, res.Body)
	}
	if res := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":3}`, rtpKey...); res.Status != http.StatusUnprocessableEntity {
		t.Errorf("ion create under the rtp run's key = %d %s, want 422", res.Status, res.Body)
	}
	if _, err := st.store.ReadStream(t.Context(), events.IdempotencyStream("org-1", scopedKey(Principal{UserID: "u-engineer"}, key)),
		events.Forwards, 0, 0); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("the key's idempotency stream: %v, want none (the run stream is the claim)", err)
	}
}
