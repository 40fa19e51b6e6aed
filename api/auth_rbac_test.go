package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// Bodies the walk sends to routes that need one.
var walkBodies = map[string]string{
	"POST /api/ion/runs":                  `{"steps":100000}`,
	"POST /api/rtp/runs":                  `{"steps":100000}`,
	"POST /api/auth/api-keys":             `{"name":"walk","role":"viewer"}`,
	"POST /api/ion/simulate/dose_profile": `{"species":"B","energy_kev":20,"dose_atoms_cm2":5e14,"tilt_deg":7,"twist_deg":0}`,
	"POST /api/rtp/tune/controller": `{"controller_type":"pid","recipe":{"segments":[{"target_temp_c":1000,"duration_s":30}]},` +
		`"optimization_target":"minimize_overshoot"}`,
}

// isStream reports whether a route is a WebSocket stream: through
// app.Test there is no upgrade, so an allowed request gets past every
// check and then answers whatever the upgrader says.
func isStream(path string) bool { return strings.Contains(path, "/stream") }

// TestRouteWalk walks every route of the table × the four roles × a
// resource of the caller's own organisation and one of another, against
// the real stack: a role that lacks the route's permission gets 403; one
// that holds it gets the route's success status for its own organisation's
// resource and 404 for the other's — the same 404 as a missing one. Every
// refusal is audited in the caller's organisation.
func TestRouteWalk(t *testing.T) {
	st := newSecStack(t)
	const own, other = "org-1", "org-2"

	// Shared resources for reads: a completed run of each kind per org,
	// and a key of the other org.
	done := map[string]map[process.Kind]projections.Run{}
	for _, org := range []string{own, other} {
		done[org] = map[process.Kind]projections.Run{}
		for _, k := range []process.Kind{process.KindIon, process.KindRTP} {
			done[org][k] = st.createRun(t, k, org, 3, projections.StatusCompleted)
		}
	}
	otherKey := st.do(t, http.MethodPost, "/api/auth/api-keys", `{"name":"theirs","role":"viewer"}`, as(t, RoleAdmin, other)...)
	if otherKey.Status != http.StatusCreated {
		t.Fatalf("POST /api/auth/api-keys as org-2 admin = %d %s", otherKey.Status, otherKey.Body)
	}
	otherKeyID, _ := otherKey.JSON(t)["id"].(string)

	// fixture returns the run, job and key ids a route's path needs, fresh
	// where the command changes the resource.
	fixture := func(t *testing.T, r Route, org string) (runID, jobID, keyID string) {
		t.Helper()
		kind := process.KindIon
		if strings.HasPrefix(r.Path, "/api/rtp/") {
			kind = process.KindRTP
		}
		if org == other {
			run := done[other][kind]
			return run.RunID, run.JobID, otherKeyID
		}
		switch {
		case r.Path == "/api/auth/api-keys/:key_id":
			res := st.do(t, http.MethodPost, "/api/auth/api-keys", `{"name":"fresh","role":"viewer"}`, as(t, RoleAdmin, own)...)
			id, _ := res.JSON(t)["id"].(string)
			return "", "", id
		case r.Method == http.MethodGet:
			run := done[own][kind]
			return run.RunID, run.JobID, ""
		case strings.HasSuffix(r.Path, "/resume"):
			run := st.createRun(t, kind, own, 100000, projections.StatusRunning)
			if _, err := st.svc.PauseRun(t.Context(), runCmd(run)); err != nil {
				t.Fatalf("PauseRun: %v", err)
			}
			run = st.waitRun(t, own, run.RunID, projections.StatusPaused)
			return run.RunID, run.JobID, ""
		case strings.HasSuffix(r.Path, "/retry"):
			run := st.createRun(t, kind, own, 100000, projections.StatusRunning)
			if _, err := st.svc.CancelRun(t.Context(), runCmd(run)); err != nil {
				t.Fatalf("CancelRun: %v", err)
			}
			run = st.waitRun(t, own, run.RunID, projections.StatusCancelled)
			return run.RunID, run.JobID, ""
		default: // cancel, pause
			run := st.createRun(t, kind, own, 100000, projections.StatusRunning)
			return run.RunID, run.JobID, ""
		}
	}

	routes := st.srv.Routes()
	streams := 0
	for _, r := range routes {
		// fab routes: TestFabRouteWalk; a tool is no organisation's
		// resource (every organisation has its own timeline and
		// maintenance of it: TestWhatIfAndMaintenanceAudited).
		if r.Permission == "" || isFabRoute(r.Path) || strings.HasPrefix(r.Path, "/api/tools/:tool_id/") {
			continue
		}
		if isStream(r.Path) {
			streams++
		}
		key := r.Method + " " + r.Path
		hasID := strings.Contains(r.Path, ":")
		for _, role := range Roles {
			for _, org := range []string{own, other} {
				if org == other && !hasID {
					continue // lists, creates and queries are the caller's organisation by construction
				}
				allowed := role.Can(r.Permission)
				name := strings.NewReplacer("/", "_", ":", "").Replace(key) + "/" + string(role) + "/" + org
				t.Run(name, func(t *testing.T) {
					var runID, jobID, keyID string
					if hasID && allowed {
						runID, jobID, keyID = fixture(t, r, org)
					} else if hasID {
						run := done[org][process.KindIon]
						runID, jobID, keyID = run.RunID, run.JobID, otherKeyID
					}
					path := strings.NewReplacer(":run_id", runID, ":job_id", jobID, ":key_id", keyID,
						":name", "telemetry.json").Replace(r.Path)
					res := st.do(t, r.Method, path, walkBodies[key], as(t, role, own)...)
					switch {
					case !allowed:
						if res.Status != http.StatusForbidden {
							t.Fatalf("%s %s as %s = %d, want 403 (lacks %s); body %s", r.Method, path, role, res.Status, r.Permission, res.Body)
						}
					case org == other:
						if res.Status != http.StatusNotFound {
							t.Fatalf("%s %s (org-2's) as %s of org-1 = %d, want 404; body %s", r.Method, path, role, res.Status, res.Body)
						}
						if e := res.Err(t); e.Message != "not found" {
							t.Errorf("404 message %q, want the one a missing resource gets", e.Message)
						}
					case isStream(r.Path):
						if s := res.Status; s == http.StatusUnauthorized || s == http.StatusForbidden || s == http.StatusNotFound {
							t.Fatalf("%s %s as %s = %d, want past authorisation; body %s", r.Method, path, role, s, res.Body)
						}
					default:
						if want := successStatus(r); res.Status != want {
							t.Fatalf("%s %s as %s = %d, want %d; body %s", r.Method, path, role, res.Status, want, res.Body)
						}
					}
				})
			}
		}
	}
	if streams != 3 {
		t.Logf("the route table has %d stream routes (ion, rtp and the organisation stream once they land)", streams)
	}

	// A missing run answers exactly like another organisation's.
	missing := st.do(t, http.MethodDelete, "/api/ion/runs/ION-20260101-FFFFFFFF", "", as(t, RoleAdmin, own)...)
	foreign := st.do(t, http.MethodDelete, "/api/ion/runs/"+done[other][process.KindIon].RunID, "", as(t, RoleAdmin, own)...)
	if missing.Status != 404 || foreign.Status != 404 || missing.Err(t).Message != foreign.Err(t).Message {
		t.Errorf("missing = %d %s, foreign = %d %s; want identical 404s", missing.Status, missing.Body, foreign.Status, foreign.Body)
	}

	// The refusals are in org-1's audit trail; its probes of org-2's runs
	// and jobs are in org-2's, once their window closes (here: shutdown).
	pos := st.head(t)
	denied := st.auditEntries(t, own, "type=access_denied&limit=500", pos)
	var forbidden int
	for _, e := range denied {
		switch e.Details["status"] {
		case float64(403), 403:
			forbidden++
		case float64(404), 404:
			t.Errorf("org-1's audit holds a 404 (a probe must leave no trace the prober reads): %+v", e)
		}
		if e.OrgID != own {
			t.Errorf("org-1's audit holds %+v", e)
		}
	}
	if forbidden == 0 {
		t.Errorf("org-1 audit: no 403 denials, want some")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := st.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	head, _ := strconv.ParseUint(st.head(t), 10, 64)
	if err := st.runner.WaitFor(ctx, head); err != nil {
		t.Fatal(err)
	}
	probes, _ := st.audit.Entries(projections.AuditFilter{OrgID: other, Type: "access_denied", Limit: 500})
	if len(probes) == 0 {
		t.Errorf("org-2's audit holds no record of org-1's probes")
	}
	for _, e := range probes {
		if e.Details["from_org"] != own || e.Details["status"] != float64(404) || e.Details["resource"] == nil {
			t.Errorf("org-2's audit holds %+v, want only org-1's 404 probes naming a resource", e)
		}
	}
}

func successStatus(r Route) int {
	switch {
	case r.Method == http.MethodPost && (strings.HasSuffix(r.Path, "/runs") || r.Path == "/api/auth/api-keys"):
		return http.StatusCreated
	case r.Method == http.MethodDelete && strings.Contains(r.Path, "/runs/"),
		r.Method == http.MethodPost && strings.HasPrefix(r.Path, "/api/jobs/"):
		return http.StatusAccepted
	}
	return http.StatusOK
}
