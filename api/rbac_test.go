package api

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/spectra-fab/spectra/projections"
)

// concrete turns a route pattern into a path.
func concrete(path string) string {
	r := strings.NewReplacer(":run_id", "ION-20260101-00000001", ":job_id", "job-000000000001", ":name", "telemetry.csv")
	return r.Replace(path)
}

// TestRBACTable sends every route of the table as each role: a role that
// holds the route's permission is never refused with 403, one that lacks it
// always is.
func TestRBACTable(t *testing.T) {
	h := newHarness(t, func(_ *Config, d *Deps) { d.Store = &logStore{} })
	h.b.addRun(projections.Run{RunID: "ION-20260101-00000001", JobID: "job-000000000001", OrgID: "org-1", Kind: "ion",
		Status: "running"})
	routes := h.srv.Routes()
	if len(routes) == 0 {
		t.Fatal("empty route table")
	}
	for _, r := range routes {
		if r.Permission == "" {
			continue
		}
		for _, role := range Roles {
			allowed := role.Can(r.Permission)
			t.Run(string(role)+"_"+r.Method+"_"+r.Path, func(t *testing.T) {
				body := ""
				if r.Method == http.MethodPost {
					body = ionRecipe
				}
				res := h.do(t, r.Method, concrete(r.Path), token(t, role, "org-1"), body)
				if allowed && res.Status == http.StatusForbidden {
					t.Errorf("%s %s as %s = 403, want allowed (%s); body %s", r.Method, r.Path, role, r.Permission, res.Body)
				}
				if !allowed && res.Status != http.StatusForbidden {
					t.Errorf("%s %s as %s = %d, want 403 (lacks %s)", r.Method, r.Path, role, res.Status, r.Permission)
				}
				if res.Status == http.StatusUnauthorized {
					t.Errorf("%s %s as %s = 401 with a valid token", r.Method, r.Path, role)
				}
			})
		}
	}
}

// TestRoutePermissions pins the route table to the specification: each endpoint and
// the permission it needs.
func TestRoutePermissions(t *testing.T) {
	h := newHarness(t)
	want := map[string]Permission{
		"POST /api/ion/runs":                    PermIonCreateRun,
		"GET /api/ion/runs":                     PermIonViewRun,
		"GET /api/ion/runs/:run_id":             PermIonViewRun,
		"DELETE /api/ion/runs/:run_id":          PermIonCancelRun,
		"POST /api/rtp/runs":                    PermRTPCreateRun,
		"GET /api/rtp/runs":                     PermRTPViewRun,
		"GET /api/rtp/runs/:run_id":             PermRTPViewRun,
		"DELETE /api/rtp/runs/:run_id":          PermRTPCancelRun,
		"GET /api/jobs":                         PermJobViewStatus,
		"GET /api/jobs/:job_id":                 PermJobViewStatus,
		"POST /api/jobs/:job_id/cancel":         PermJobCancel,
		"POST /api/jobs/:job_id/pause":          PermRunPause,
		"POST /api/jobs/:job_id/resume":         PermRunPause,
		"POST /api/jobs/:job_id/retry":          PermJobRetry,
		"GET /api/jobs/:job_id/logs":            PermJobViewLogs,
		"GET /api/spc/charts":                   PermSPCView,
		"GET /api/r2r/threads":                  PermSPCView,
		"GET /api/auth/me":                      PermJobViewStatus,
		"GET /api/ion/runs/:run_id/profile":     PermIonViewRun,
		"GET /api/runs/:run_id/r2r":             PermSPCView,
		"GET /api/runs":                         PermJobViewStatus,
		"GET /api/runs/:run_id/events":          PermJobViewLogs,
		"GET /api/jobs/:job_id/artifacts/:name": PermJobViewStatus,
		"GET /healthz":                          "",
		"GET /readyz":                           "",
		"GET /metrics":                          "",
		"GET /":                                 "",
		"GET /dashboard/:file":                  "",
		"GET /openapi.json":                     "",
		"POST /api/ion/simulate/dose_profile":   PermIonSimulate,
		"POST /api/rtp/tune/controller":         PermRTPTuneController,
		"POST /api/auth/api-keys":               PermAPIKeyManage,
		"GET /api/auth/api-keys":                PermAPIKeyManage,
		"DELETE /api/auth/api-keys/:key_id":     PermAPIKeyManage,
		"POST /api/auth/token":                  "", // authenticated by X-API-Key
		"POST /api/auth/refresh":                "", // authenticated by the refresh token
		"DELETE /api/auth/refresh":              "", // authenticated by the refresh cookie
		"GET /api/audit":                        PermAuditView,
		"GET /api/runs/:run_id/verify":          PermAuditView,
		"GET /api/runs/:run_id/records":         PermAuditView,
		"POST /api/r2r/what-if":                 PermSPCManage,
		"GET /api/tools/:tool_id/timeline":      PermSPCView,
		"POST /api/tools/:tool_id/maintenance":  PermToolMaintain,
		"GET /api/ion/stream/:run_id":           PermIonViewTelemetry,
		"GET /api/rtp/stream/:run_id":           PermRTPViewTelemetry,
		"GET /api/stream":                       PermJobViewStatus,

		"POST /api/recipes":                                   PermRecipeWrite,
		"GET /api/recipes":                                    PermRecipeView,
		"GET /api/recipes/:recipe":                            PermRecipeView,
		"GET /api/recipes/:recipe/versions/:version":          PermRecipeView,
		"POST /api/recipes/:recipe/versions/:version/approve": PermRecipeApprove,
		"GET /api/recipes/:recipe/diff":                       PermRecipeView,
		"POST /api/lots":                                      PermLotCreate,
		"GET /api/lots":                                       PermLotView,
		"GET /api/lots/:lot_id":                               PermLotView,
		"POST /api/lots/:lot_id/cancel":                       PermLotControl,
		"POST /api/lots/:lot_id/pause":                        PermLotControl,
		"POST /api/lots/:lot_id/resume":                       PermLotControl,
		"POST /api/lots/:lot_id/retry":                        PermLotControl,
		"POST /api/schedules":                                 PermScheduleManage,
		"GET /api/schedules":                                  PermScheduleView,
		"GET /api/schedules/:schedule_id":                     PermScheduleView,
		"POST /api/schedules/:schedule_id/pause":              PermScheduleManage,
		"POST /api/schedules/:schedule_id/resume":             PermScheduleManage,
	}
	optional := map[string]bool{}
	got := map[string]Permission{}
	for _, r := range h.srv.Routes() {
		key := r.Method + " " + r.Path
		if _, dup := got[key]; dup {
			t.Errorf("route %s registered twice", key)
		}
		got[key] = r.Permission
	}
	for key, perm := range want {
		g, ok := got[key]
		switch {
		case !ok && !optional[key]:
			t.Errorf("route %s missing from the table", key)
		case ok && g != perm:
			t.Errorf("route %s needs %q, want %q", key, g, perm)
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("route %s is not in this test: add it with its permission", key)
		}
	}
}

// TestRolePermissions checks the role table against the specification's prose,
// independently of how the table is written.
func TestRolePermissions(t *testing.T) {
	for _, p := range allPermissions {
		if !RoleAdmin.Can(p) {
			t.Errorf("admin lacks %s", p)
		}
	}
	cases := []struct {
		role Role
		can  []Permission
		not  []Permission
	}{
		{RoleEngineer,
			[]Permission{PermIonCreateRun, PermRTPCreateRun, PermRTPTuneController, PermIonSimulate, PermJobRetry,
				PermIonViewRun, PermRTPViewRun, PermJobViewStatus, PermJobViewLogs, PermIonViewTelemetry,
				PermRTPViewTelemetry, PermSPCView, PermAuditView},
			[]Permission{PermAPIKeyManage}},
		{RoleOperator,
			[]Permission{PermIonCreateRun, PermRTPCreateRun, PermIonCancelRun, PermRTPCancelRun, PermJobCancel,
				PermRunPause, PermIonViewRun, PermRTPViewRun, PermIonViewTelemetry, PermRTPViewTelemetry,
				PermJobViewStatus},
			[]Permission{PermJobRetry, PermRTPTuneController, PermIonSimulate, PermSPCManage,
				PermAuditView, PermAPIKeyManage}},
		{RoleViewer,
			[]Permission{PermIonViewRun, PermRTPViewRun, PermJobViewStatus, PermIonViewTelemetry, PermRTPViewTelemetry,
				PermSPCView},
			nil},
	}
	for _, tt := range cases {
		for _, p := range tt.can {
			if !tt.role.Can(p) {
				t.Errorf("%s lacks %s", tt.role, p)
			}
		}
		for _, p := range tt.not {
			if tt.role.Can(p) {
				t.Errorf("%s holds %s", tt.role, p)
			}
		}
	}
	// A viewer is read-only: no permission that changes anything.
	for _, p := range RoleViewer.Permissions() {
		if !strings.Contains(string(p), "view") {
			t.Errorf("viewer holds %s, which is not read-only", p)
		}
	}
	for role, perms := range rolePermissions {
		for _, p := range perms {
			if !slices.Contains(allPermissions, p) {
				t.Errorf("%s holds unknown permission %s", role, p)
			}
		}
	}
}

// Every permission of the table guards at least one route: a permission no
// route uses promises an access control that does not exist.
func TestEveryPermissionGuardsARoute(t *testing.T) {
	h := newHarness(t)
	used := map[Permission]bool{}
	for _, r := range h.srv.Routes() {
		used[r.Permission] = true
	}
	for _, p := range allPermissions {
		if !used[p] {
			t.Errorf("permission %s guards no route: give it one or drop it from the table", p)
		}
	}
}
