package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/fab"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
)

func isFabRoute(path string) bool {
	for _, p := range []string{"/api/recipes", "/api/lots", "/api/schedules"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// newFabService is the fab service of the real test stack.
func newFabService(store fab.Store, svc *actors.Service) *fab.Service {
	return fab.NewService(store, svc, map[process.Kind]fab.Validator{
		process.KindIon: processtest.Factory{Kind: process.KindIon}, process.KindRTP: processtest.Factory{Kind: process.KindRTP}},
		fab.Options{TimeScale: 1, Node: "node-test"})
}

var fabWalkBodies = map[string]string{
	"POST /api/recipes":   `{"name":"walked","kind":"ion","recipe":{"steps":10}}`,
	"POST /api/lots":      `{"recipe":{"name":"released"},"wafer_count":2}`,
	"POST /api/schedules": `{"recipe":{"name":"released"},"kind":"ion","cron":"@hourly"}`,
}

func fabSuccess(r Route) int {
	switch {
	case r.Method == http.MethodGet, strings.HasSuffix(r.Path, "/approve"):
		return http.StatusOK
	case r.Path == "/api/recipes", r.Path == "/api/lots", r.Path == "/api/schedules":
		return http.StatusCreated
	}
	return http.StatusAccepted
}

// TestFabRouteWalk walks every fab route × role × a resource of the
// caller's organisation and one of another's, as TestRouteWalk does for
// runs: 403 without the permission, the success status for one's own, 404
// (the "not found" a missing one gets) for another organisation's.
func TestFabRouteWalk(t *testing.T) {
	st := newSecStack(t)
	svc := newFabService(st.store, st.svc)
	ctx := t.Context()
	md := func(org, user string) events.Metadata {
		return events.Metadata{OrgID: org, UserID: user, Role: "admin"}
	}
	const own, other = "org-1", "org-2"
	for _, org := range []string{own, other} {
		if _, _, err := svc.SaveRecipe(ctx, fab.SaveRecipe{Name: "released", Kind: process.KindIon,
			Recipe: json.RawMessage(`{"steps":100000}`), Meta: md(org, "u-setup")}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.ApproveRecipe(ctx, fab.ApproveRecipe{Name: "released", Version: 1, Meta: md(org, "u-approver")}); err != nil {
			t.Fatal(err)
		}
	}
	otherLot, err := svc.CreateLot(ctx, fab.CreateLot{Recipe: events.RecipeRef{Name: "released"}, Wafers: []string{"A"}, Production: true, Meta: md(other, "u-setup")})
	if err != nil {
		t.Fatal(err)
	}
	otherSched, _, err := svc.CreateSchedule(ctx, fab.CreateSchedule{Cron: "@hourly", Target: events.ScheduleTarget{Kind: process.KindIon,
		Recipe: events.RecipeRef{Name: "released"}}, Meta: md(other, "u-setup")})
	if err != nil {
		t.Fatal(err)
	}

	// fixture returns the path's ids: fresh where the command changes the
	// resource.
	fixture := func(t *testing.T, r Route, org string) (recipe, version, lot, sched string) {
		t.Helper()
		if org == other {
			return "released", "1", otherLot.Lot.LotID, otherSched.ScheduleID
		}
		recipe, version = "released", "1"
		if strings.HasSuffix(r.Path, "/approve") {
			rec, _, err := svc.SaveRecipe(ctx, fab.SaveRecipe{Name: "released", Kind: process.KindIon,
				Recipe: json.RawMessage(`{"steps":100000}`), Meta: md(own, "u-setup")})
			if err != nil {
				t.Fatal(err)
			}
			version = strconv.Itoa(rec.Latest())
		}
		if strings.HasPrefix(r.Path, "/api/lots/") {
			l, err := svc.CreateLot(ctx, fab.CreateLot{Recipe: events.RecipeRef{Name: "released"}, Wafers: []string{"A", "B"},
				Production: true, Meta: md(own, "u-setup")})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range l.Wafers {
				st.waitRun(t, own, w.RunID, "running")
			}
			lot = l.Lot.LotID
			if strings.HasSuffix(r.Path, "/resume") {
				if _, err := svc.CommandLot(ctx, fab.LotCommand{LotID: lot, Verb: fab.LotPause, Meta: md(own, "u-setup")}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if strings.HasPrefix(r.Path, "/api/schedules/") {
			sc, _, err := svc.CreateSchedule(ctx, fab.CreateSchedule{Cron: "@hourly", Target: events.ScheduleTarget{Kind: process.KindIon,
				Recipe: events.RecipeRef{Name: "released"}}, Meta: md(own, "u-setup")})
			if err != nil {
				t.Fatal(err)
			}
			sched = sc.ScheduleID
			if strings.HasSuffix(r.Path, "/resume") {
				if _, _, err := svc.CommandSchedule(ctx, fab.ScheduleCommand{ScheduleID: sched, Verb: fab.LotPause, Meta: md(own, "u-setup")}); err != nil {
					t.Fatal(err)
				}
			}
		}
		return recipe, version, lot, sched
	}

	walked := 0
	for _, r := range st.srv.Routes() {
		if !isFabRoute(r.Path) {
			continue
		}
		walked++
		key := r.Method + " " + r.Path
		hasID := strings.Contains(r.Path, ":")
		for _, role := range Roles {
			for _, org := range []string{own, other} {
				if org == other && !hasID {
					continue
				}
				allowed := role.Can(r.Permission)
				t.Run(strings.NewReplacer("/", "_", ":", "").Replace(key)+"/"+string(role)+"/"+org, func(t *testing.T) {
					recipe, version, lot, sched := "released", "1", otherLot.Lot.LotID, otherSched.ScheduleID
					if allowed {
						recipe, version, lot, sched = fixture(t, r, org)
					}
					path := strings.NewReplacer(":recipe", recipe, ":version", version, ":lot_id", lot, ":schedule_id", sched).Replace(r.Path)
					if strings.HasSuffix(path, "/diff") {
						path += "?from=1&to=1"
					}
					res := st.do(t, r.Method, path, fabWalkBodies[key], as(t, role, own)...)
					switch {
					case !allowed:
						if res.Status != http.StatusForbidden {
							t.Fatalf("%s %s as %s = %d, want 403 (lacks %s); body %s", r.Method, path, role, res.Status, r.Permission, res.Body)
						}
					case org == other && !strings.HasPrefix(r.Path, "/api/recipes/"):
						if res.Status != http.StatusNotFound || res.Err(t).Message != "not found" {
							t.Fatalf("%s %s (org-2's) as %s = %d %s, want 404 not found", r.Method, path, role, res.Status, res.Body)
						}
					case org == other:
						// Recipe names are per organisation: org-1's
						// "released" is its own, never org-2's.
						var got map[string]any
						if res.Status == http.StatusOK {
							_ = json.Unmarshal(res.Body, &got)
							if got["org_id"] != nil && got["org_id"] != own {
								t.Fatalf("%s %s as org-1 shows %v", r.Method, path, got["org_id"])
							}
						}
					default:
						if want := fabSuccess(r); res.Status != want {
							t.Fatalf("%s %s as %s = %d, want %d; body %s", r.Method, path, role, res.Status, want, res.Body)
						}
					}
				})
			}
		}
	}
	if walked != 17 {
		t.Errorf("walked %d fab routes, want 17", walked)
	}
	// A recipe only org-2 has is not found for org-1.
	if _, _, err := svc.SaveRecipe(ctx, fab.SaveRecipe{Name: "theirs", Kind: process.KindIon,
		Recipe: json.RawMessage(`{"steps":5}`), Meta: md(other, "u-setup")}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/api/recipes/theirs", "/api/recipes/theirs/versions/1", "/api/recipes/theirs/diff"} {
		if res := st.do(t, http.MethodGet, p, "", as(t, RoleAdmin, own)...); res.Status != http.StatusNotFound {
			t.Errorf("GET %s as org-1 = %d, want 404", p, res.Status)
		}
	}
	// Every fab command is audited with who did it.
	head := st.head(t)
	for _, a := range []string{"recipe_saved", "recipe_approved", "lot_started", "lot_cancel_requested", "lot_paused",
		"lot_resumed", "schedule_created", "schedule_paused", "schedule_resumed"} {
		entries := st.auditEntries(t, own, "type="+a+"&limit=1", head)
		if len(entries) == 0 || entries[0].UserID == "" {
			t.Errorf("audit of %s = %+v, want an entry naming who", a, entries)
		}
	}
}
