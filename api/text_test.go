package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/spectra-fab/spectra/projections"
)

// Free text is data: a string with a control character, a layout
// character, invalid UTF-8 or too many characters is refused with a field
// error naming it, anywhere in the body or the query; prose fields may
// hold newlines.
func TestFreeTextPolicy(t *testing.T) {
	st := newSecStack(t, func(c *Config) { c.AllowFaultInjection = true })
	eng := as(t, RoleEngineer, "org-1")
	tests := []struct {
		name, body, field string
	}{
		{"newline_in_tool_id", `{"steps":3,"tool_id":"IMP-1\nRunResumed by admin"}`, "tool_id"},
		{"escape_in_tool_id", `{"steps":3,"tool_id":"IMP\u001b[31m"}`, "tool_id"},
		{"bidi_override_in_wafer_id", `{"steps":3,"wafer_id":"W1\u202eevil"}`, "wafer_id"},
		{"control_in_fault_message", `{"steps":3,"simulate_fault":{"kind":"transient","at_progress_pct":50,"message":"x\u0000y"}}`, "simulate_fault.message"},
		{"long_lot_id", `{"steps":3,"lot_id":"` + strings.Repeat("L", 300) + `"}`, "lot_id"},
		{"long_comments", `{"steps":3,"comments":"` + strings.Repeat("c", 2001) + `"}`, "comments"},
		{"nested_array", `{"steps":3,"segments":[{"name":"ok"},{"name":"a\rb"}]}`, "segments[1].name"},
		{"control_in_field_name", `{"steps":3,"a\u0007":1}`, "body"},
		{"invalid_utf8", "{\"steps\":3,\"tool_id\":\"\xff\xfe\"}", "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := st.do(t, http.MethodPost, "/api/ion/runs", tt.body, eng...)
			if res.Status != http.StatusUnprocessableEntity {
				t.Fatalf("POST = %d %s, want 422", res.Status, res.Body)
			}
			e := res.Err(t)
			if e.Code != CodeValidation || len(e.Fields) == 0 || e.Fields[0].Field != tt.field {
				t.Errorf("error = %+v, want a field error naming %s", e, tt.field)
			}
		})
	}

	// Prose keeps its lines.
	ok := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":100000,"tool_id":"IMP-1","comments":"line 1\nline 2\ttabbed"}`, eng...)
	if ok.Status != http.StatusCreated {
		t.Fatalf("create with multi-line comments = %d %s, want 201", ok.Status, ok.Body)
	}
	runID := ok.JSON(t)["run_id"].(string)
	st.waitRun(t, "org-1", runID, projections.StatusRunning)

	// A cancel reason in the query obeys the same policy.
	res := st.do(t, http.MethodDelete, "/api/ion/runs/"+runID+"?reason="+url.QueryEscape("done\x1b[2K"), "",
		as(t, RoleOperator, "org-1")...)
	if res.Status != http.StatusUnprocessableEntity || res.Err(t).Fields[0].Field != "reason" {
		t.Errorf("DELETE with an escape sequence in ?reason = %d %s, want 422 naming reason", res.Status, res.Body)
	}
	res = st.do(t, http.MethodPost, "/api/jobs/"+ok.JSON(t)["job_id"].(string)+"/cancel", `{"reason":"stop\u001b]0;pwned\u0007"}`,
		as(t, RoleOperator, "org-1")...)
	if res.Status != http.StatusUnprocessableEntity || res.Err(t).Fields[0].Field != "reason" {
		t.Errorf("cancel with an escape sequence in reason = %d %s, want 422 naming reason", res.Status, res.Body)
	}
}
