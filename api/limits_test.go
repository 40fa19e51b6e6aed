package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/projections"
)

// TestRequestLimits: malformed ids never reach the store (404, as if
// missing), deep JSON and unknown fields are 422.
func TestRequestLimits(t *testing.T) {
	h := newHarness(t, func(_ *Config, d *Deps) {
		store := memory.New()
		t.Cleanup(func() { _ = store.Close() })
		d.Credentials, d.Events = projections.NewSecurity(), store
	})
	h.b.addRun(projections.Run{RunID: "ION-20260101-00000001", JobID: "job-000000000001", OrgID: "org-1", Kind: "ion",
		Status: "running"})
	adm := token(t, RoleAdmin, "org-1")
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"run_id_lowercase", http.MethodGet, "/api/ion/runs/ion-20260101-00000001", "", 404},
		{"run_id_injection", http.MethodGet, "/api/ion/runs/ION-20260101-0000000%2A", "", 404},
		{"run_id_too_long", http.MethodDelete, "/api/ion/runs/ION-20260101-000000011", "", 404},
		{"job_id_upper", http.MethodGet, "/api/jobs/job-00000000000A", "", 404},
		{"job_id_short", http.MethodPost, "/api/jobs/job-1/cancel", "", 404},
		{"key_id", http.MethodDelete, "/api/auth/api-keys/zz", "", 404},
		{"well_formed_run", http.MethodGet, "/api/ion/runs/ION-20260101-00000001", "", 200},
		{"deep_body", http.MethodPost, "/api/ion/runs", `{"x":` + deep + `}`, 422},
		{"deep_in_string_ok", http.MethodPost, "/api/jobs/job-000000000001/cancel", `{"reason":"` + deep + `"}`, 202},
		{"unknown_field_reason", http.MethodPost, "/api/jobs/job-000000000001/pause", `{"reason":"x","force":true}`, 422},
		{"unknown_field_key", http.MethodPost, "/api/auth/api-keys", `{"name":"a","role":"viewer","scopes":[]}`, 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.do(t, tt.method, tt.path, adm, tt.body)
			if res.Status != tt.want {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, res.Status, res.Body, tt.want)
			}
			if tt.want == 422 {
				if e := res.Err(t); len(e.Fields) == 0 {
					t.Errorf("422 names no field: %s", res.Body)
				}
			}
		})
	}
	if n := len(h.b.commands); n != 1 {
		t.Errorf("%d commands reached the actor layer, want 1 (the well-formed cancel)", n)
	}
}

func TestCheckDepth(t *testing.T) {
	for _, tt := range []struct {
		body string
		ok   bool
	}{
		{`{}`, true},
		{strings.Repeat("[", 32) + strings.Repeat("]", 32), true},
		{strings.Repeat("[", 33) + strings.Repeat("]", 33), false},
		{`{"a":"` + strings.Repeat("{", 100) + `"}`, true},
		{`{"a":"\"` + strings.Repeat("{", 100) + `"}`, true},
	} {
		if err := checkDepth([]byte(tt.body), 32); (err == nil) != tt.ok {
			t.Errorf("checkDepth(%.40q) = %v, want ok %v", tt.body, err, tt.ok)
		}
	}
}
