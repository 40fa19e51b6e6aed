package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

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
	// A running wafer does not take the retry: reported in the 202.
	"POST /api/lots/:lot_id/retry": `{"wafers":["A"]}`,
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
	if walked != 18 {
		t.Errorf("walked %d fab routes, want 18", walked)
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

// A lot whose creation is cut short after a wafer's run was created but
// before the lot recorded it (here the request's context ends there, as a
// crash would end it) is completed by CompleteLot: every wafer gets its
// run, the one created before the cut is found rather than made again, and
// the lot records each wafer once.
func TestLotCreationCutShortIsCompleted(t *testing.T) {
	st := newSecStack(t)
	cut, cancel := context.WithCancel(t.Context())
	defer cancel()
	var hooked []string
	svc := fab.NewService(st.store, st.svc, map[process.Kind]fab.Validator{process.KindIon: processtest.Factory{Kind: process.KindIon}},
		fab.Options{TimeScale: 1, Node: "node-test", OnWaferRun: func(lotID, waferID string) {
			if hooked = append(hooked, waferID); len(hooked) == 3 {
				cancel() // the third wafer's run exists; the lot will not record it
			}
		}})
	md := func(user string) events.Metadata {
		return events.Metadata{OrgID: "org-1", UserID: user, Role: "admin", RequestID: "req-" + user}
	}
	if _, _, err := svc.SaveRecipe(t.Context(), fab.SaveRecipe{Name: "cut", Kind: process.KindIon,
		Recipe: json.RawMessage(`{"steps":3}`), Meta: md("u-eng")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ApproveRecipe(t.Context(), fab.ApproveRecipe{Name: "cut", Version: 1, Meta: md("u-admin")}); err != nil {
		t.Fatal(err)
	}
	wafers := []string{"W1", "W2", "W3", "W4", "W5", "W6"}
	start, err := svc.CreateLot(cut, fab.CreateLot{LotID: "LOT-CUT", Recipe: events.RecipeRef{Name: "cut"}, Wafers: wafers,
		Production: true, Meta: md("u-op")})
	if err != nil {
		t.Fatalf("CreateLot: %v", err)
	}
	short, _ := svc.Lot(t.Context(), "org-1", "LOT-CUT")
	if got := short.Missing(); len(got) != 4 || got[0] != "W3" {
		t.Fatalf("cut short: missing %v (start %+v), want W3–W6", got, start.Wafers)
	}
	if err := st.runner.WaitFor(t.Context(), mustPos(t, st.head(t))); err != nil {
		t.Fatal(err)
	}
	if refs := st.fab.ShortLots(time.Now()); len(refs) != 1 || refs[0].LotID != "LOT-CUT" {
		t.Fatalf("ShortLots = %v, want LOT-CUT", refs)
	}

	done, err := svc.CompleteLot(t.Context(), "org-1", "LOT-CUT")
	if err != nil {
		t.Fatalf("CompleteLot: %v", err)
	}
	if len(done.Lot.Missing()) != 0 || len(done.Lot.Members) != len(wafers) {
		t.Fatalf("completed lot: missing %v, %d members", done.Lot.Missing(), len(done.Lot.Members))
	}
	runs := map[string]bool{}
	for _, m := range done.Lot.Members {
		if runs[m.RunID] {
			t.Errorf("run %s belongs to two wafers", m.RunID)
		}
		runs[m.RunID] = true
		// The wafer's key names this run and no other: W3's run is the
		// one created before the cut.
		recs, err := st.store.ReadStream(t.Context(), events.IdempotencyStream("org-1", fab.WaferKey("LOT-CUT", m.WaferID)), events.Forwards, 0, 0)
		if err != nil || len(recs) != 1 {
			t.Fatalf("wafer %s key: %d claims, %v", m.WaferID, len(recs), err)
		}
		p, _ := events.Decode(recs[0])
		if c := p.(*events.IdempotencyKeyClaimed); c.RunID != m.RunID {
			t.Errorf("wafer %s: the lot has run %s, its key names %s", m.WaferID, m.RunID, c.RunID)
		}
		r := st.waitRun(t, "org-1", m.RunID)
		if r.OrgID != "org-1" {
			t.Errorf("wafer %s run org %s", m.WaferID, r.OrgID)
		}
	}
	// Each wafer is recorded once in the lot's log, and the runs created
	// by the completion are caused by the lot's request, as its creator.
	recs, err := st.store.ReadStream(t.Context(), events.LotStream("LOT-CUT"), events.Forwards, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	started := 0
	for _, r := range recs {
		if events.BaseType(r.Type) == events.TypeLotWaferStarted {
			started++
			if r.Metadata.UserID != "u-op" {
				t.Errorf("wafer recorded as %s, want the lot's creator u-op", r.Metadata.UserID)
			}
		}
	}
	if started != len(wafers) {
		t.Errorf("%d LotWaferStarted, want %d", started, len(wafers))
	}
	again, err := svc.CompleteLot(t.Context(), "org-1", "LOT-CUT")
	if err != nil || again.Lot.Revision != done.Lot.Revision {
		t.Errorf("CompleteLot of a complete lot: revision %d → %d, %v", done.Lot.Revision, again.Lot.Revision, err)
	}
	if err := st.runner.WaitFor(t.Context(), mustPos(t, st.head(t))); err != nil {
		t.Fatal(err)
	}
	if refs := st.fab.ShortLots(time.Now()); len(refs) != 0 {
		t.Errorf("ShortLots after completion = %v", refs)
	}
}

func mustPos(t *testing.T, s string) uint64 {
	t.Helper()
	p, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A slot whose recipe has no approved version starts nothing and is
// recorded as skipped, with the reason, on the schedule's stream: audited,
// in the schedule's view. Once a version is approved the next slot fires.
func TestScheduleFiringSkippedWithoutApprovedVersion(t *testing.T) {
	st := newSecStack(t)
	epoch := time.Date(2026, 12, 3, 8, 0, 30, 0, time.UTC)
	svc := fab.NewService(st.store, st.svc, map[process.Kind]fab.Validator{process.KindIon: processtest.Factory{Kind: process.KindIon}},
		fab.Options{TimeScale: 60, Node: "node-test", Now: func() time.Time { return epoch }})
	md := func(user string) events.Metadata { return events.Metadata{OrgID: "org-1", UserID: user, Role: "admin"} }
	ctx := t.Context()
	if _, _, err := svc.SaveRecipe(ctx, fab.SaveRecipe{Name: "draft", Kind: process.KindIon, Recipe: json.RawMessage(`{"steps":3}`),
		Meta: md("u-eng")}); err != nil {
		t.Fatal(err)
	}
	created, _, err := svc.CreateSchedule(ctx, fab.CreateSchedule{Cron: "* * * * *", Target: events.ScheduleTarget{Kind: process.KindIon,
		Recipe: events.RecipeRef{Name: "draft"}}, Meta: md("u-eng")})
	if err != nil {
		t.Fatal(err)
	}
	sc := &fab.Schedule{ScheduleID: created.ScheduleID}
	wall := func(d time.Duration) time.Time { return epoch.Add(d) } // process time runs 60× faster
	slot, err := svc.FireDue(ctx, sc, wall(time.Second))            // process 08:01:30: the 08:01 slot
	if err != nil || slot == nil {
		t.Fatalf("FireDue = %v, %v; want the 08:01 slot skipped", slot, err)
	}
	if sc.Skips != 1 || sc.Firings != 0 || sc.LastSkip == nil || !strings.Contains(sc.LastSkip.Reason, "no approved version") {
		t.Fatalf("schedule after the slot: %d skips, %d firings, last %+v", sc.Skips, sc.Firings, sc.LastSkip)
	}
	if slot, _ := svc.FireDue(ctx, sc, wall(time.Second)); slot != nil {
		t.Fatalf("the skipped slot came again: %v", slot)
	}
	if _, _, err := svc.ApproveRecipe(ctx, fab.ApproveRecipe{Name: "draft", Version: 1, Meta: md("u-admin")}); err != nil {
		t.Fatal(err)
	}
	if slot, err := svc.FireDue(ctx, sc, wall(2*time.Second)); err != nil || slot == nil || sc.Firings != 1 {
		t.Fatalf("FireDue after approval = %v, %v (%d firings), want the 08:02 slot fired", slot, err, sc.Firings)
	}

	head := st.head(t)
	res := st.do(t, http.MethodGet, "/api/schedules/"+sc.ScheduleID, "", append(as(t, RoleOperator, "org-1"), HeaderMinPosition, head)...)
	var view struct {
		Schedule fab.Schedule `json:"schedule"`
		Firings  []firing     `json:"firings"`
		Skips    []skip       `json:"skips"`
	}
	if err := json.Unmarshal(res.Body, &view); err != nil || res.Status != http.StatusOK {
		t.Fatalf("GET schedule = %d %s", res.Status, res.Body)
	}
	if len(view.Skips) != 1 || len(view.Firings) != 1 || view.Schedule.Skips != 1 ||
		!view.Skips[0].Slot.Equal(time.Date(2026, 12, 3, 8, 1, 0, 0, time.UTC)) || !strings.Contains(view.Skips[0].Reason, "not approved") &&
		!strings.Contains(view.Skips[0].Reason, "no approved version") {
		t.Errorf("schedule view: skips %+v, firings %+v", view.Skips, view.Firings)
	}
	entries := st.auditEntries(t, "org-1", "type=schedule_firing_skipped", head)
	if len(entries) != 1 || entries[0].UserID != "u-eng" {
		t.Errorf("audit of skipped firings = %+v, want one, as the schedule's creator", entries)
	}
	list := st.do(t, http.MethodGet, "/api/schedules", "", append(as(t, RoleOperator, "org-1"), HeaderMinPosition, head)...)
	if !strings.Contains(string(list.Body), `"skips":1`) {
		t.Errorf("schedule list = %s, want skips 1", list.Body)
	}
}

// The lot view's JSON is a contract (the dashboard's lot view reads it):
// these fields keep their names and kinds; new ones may be added. Lists
// are lists and maps are maps even when empty.
func TestLotViewShape(t *testing.T) {
	st := newSecStack(t)
	svc := newFabService(st.store, st.svc)
	admin := events.Metadata{OrgID: "org-1", UserID: "u-setup", Role: "admin"}
	if _, _, err := svc.SaveRecipe(t.Context(), fab.SaveRecipe{Name: "shape", Kind: process.KindIon,
		Recipe: json.RawMessage(`{"steps":2}`), Meta: admin}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ApproveRecipe(t.Context(), fab.ApproveRecipe{Name: "shape", Version: 1,
		Meta: events.Metadata{OrgID: "org-1", UserID: "u-approver", Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	// A lot recorded with no wafer run yet (its creation under way, or
	// cut short) and a lot whose wafers ran.
	ev, _ := events.New(&events.LotRequested{LotID: "LOT-EMPTY", OrgID: "org-1", Kind: process.KindIon,
		Recipe: events.RecipeRef{Name: "shape", Version: 1}, Wafers: []string{"W01"}, Production: true}, admin)
	if _, err := st.store.Append(t.Context(), events.LotStream("LOT-EMPTY"), events.ExpectNoStream, ev); err != nil {
		t.Fatal(err)
	}
	res := st.do(t, http.MethodPost, "/api/lots", `{"recipe":{"name":"shape"},"wafer_count":2,"lot_id":"LOT-SHAPE"}`, as(t, RoleOperator, "org-1")...)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /api/lots = %d %s", res.Status, res.Body)
	}
	var started fab.LotStart
	_ = json.Unmarshal(res.Body, &started)
	for _, w := range started.Wafers {
		st.waitRun(t, "org-1", w.RunID, "completed")
	}
	kinds := map[string]string{
		"lot_id": "string", "org_id": "string", "kind": "string", "recipe": "object", "wafers": "array",
		"priority": "number", "production": "bool", "created_by": "string", "created_at": "string", "members": "array",
		"cancelled": "bool", "paused": "bool", "revision": "number", "retries": "number",
		"status": "string", "progress": "number", "counts": "object", "wafer_runs": "array", "results": "object", "spc_points": "object",
	}
	waferKinds := map[string]string{"wafer_id": "string", "slot": "number", "status": "string", "progress": "number",
		"spc_alerts_count": "number", "retries": "number"}
	kindOf := func(v any) string {
		switch v.(type) {
		case string:
			return "string"
		case float64:
			return "number"
		case bool:
			return "bool"
		case []any:
			return "array"
		case map[string]any:
			return "object"
		}
		return "null"
	}
	for _, id := range []string{"LOT-EMPTY", "LOT-SHAPE"} {
		res := st.do(t, http.MethodGet, "/api/lots/"+id, "", append(as(t, RoleViewer, "org-1"), HeaderMinPosition, st.head(t))...)
		var v map[string]any
		if err := json.Unmarshal(res.Body, &v); err != nil || res.Status != http.StatusOK {
			t.Fatalf("GET /api/lots/%s = %d %s", id, res.Status, res.Body)
		}
		for k, want := range kinds {
			if got := kindOf(v[k]); got != want {
				t.Errorf("%s: %s is %s (%v), want %s", id, k, got, v[k], want)
			}
		}
		for _, w := range v["wafer_runs"].([]any) {
			for k, want := range waferKinds {
				if got := kindOf(w.(map[string]any)[k]); got != want {
					t.Errorf("%s: wafer_runs[].%s is %s, want %s", id, k, got, want)
				}
			}
		}
		if id == "LOT-SHAPE" {
			if v["status"] != "completed" || len(v["members"].([]any)) != 2 || len(v["results"].(map[string]any)) == 0 {
				t.Errorf("LOT-SHAPE view: status %v, members %v, results %v", v["status"], v["members"], v["results"])
			}
			w := v["wafer_runs"].([]any)[0].(map[string]any)
			if kindOf(w["run_id"]) != "string" || kindOf(w["job_id"]) != "string" || kindOf(w["result"]) != "object" {
				t.Errorf("a completed wafer: %v, want run_id, job_id and result", w)
			}
		}
	}
}

// POST /api/lots with an Idempotency-Key is repeatable: the same request
// again answers 200 with the same lot and runs; another request under the
// key is a 422 on the key.
func TestLotCreateIdempotencyKey(t *testing.T) {
	st := newSecStack(t)
	svc := newFabService(st.store, st.svc)
	if _, _, err := svc.SaveRecipe(t.Context(), fab.SaveRecipe{Name: "rep", Kind: process.KindIon,
		Recipe: json.RawMessage(`{"steps":100000}`), Meta: events.Metadata{OrgID: "org-1", UserID: "u-eng", Role: "engineer"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ApproveRecipe(t.Context(), fab.ApproveRecipe{Name: "rep", Version: 1,
		Meta: events.Metadata{OrgID: "org-1", UserID: "u-admin", Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	op := append(as(t, RoleOperator, "org-1"), HeaderIdempotency, "lot-key-1")
	post := func(body string, hdr []string) (response, fab.LotStart) {
		res := st.do(t, http.MethodPost, "/api/lots", body, hdr...)
		var out fab.LotStart
		_ = json.Unmarshal(res.Body, &out)
		return res, out
	}
	first, a := post(`{"recipe":{"name":"rep"},"wafer_count":3}`, op)
	if first.Status != http.StatusCreated || len(a.Wafers) != 3 || !strings.HasPrefix(a.Lot.LotID, "LOT-K") {
		t.Fatalf("first POST = %d %s", first.Status, first.Body)
	}
	second, b := post(`{"wafer_count":3, "recipe":{"name":"rep"}}`, op)
	if second.Status != http.StatusOK || !b.Existing || b.Lot.LotID != a.Lot.LotID {
		t.Fatalf("repeated POST = %d %s, want 200 with lot %s", second.Status, second.Body, a.Lot.LotID)
	}
	for i := range a.Wafers {
		if b.Wafers[i].RunID != a.Wafers[i].RunID || b.Wafers[i].RunID == "" {
			t.Errorf("wafer %s: run %s, then %s", a.Wafers[i].WaferID, a.Wafers[i].RunID, b.Wafers[i].RunID)
		}
	}
	other, _ := post(`{"recipe":{"name":"rep"},"wafer_count":4}`, op)
	if other.Status != http.StatusUnprocessableEntity || !strings.Contains(string(other.Body), "Idempotency-Key") {
		t.Errorf("another request under the key = %d %s, want 422 on Idempotency-Key", other.Status, other.Body)
	}
	// The key is the principal's: another user's same key is another lot.
	mine, c := post(`{"recipe":{"name":"rep"},"wafer_count":3}`, append(as(t, RoleEngineer, "org-1"), HeaderIdempotency, "lot-key-1"))
	if mine.Status != http.StatusCreated || c.Lot.LotID == a.Lot.LotID {
		t.Errorf("another principal's key = %d, lot %s (first %s)", mine.Status, c.Lot.LotID, a.Lot.LotID)
	}
}

// The lot and schedule lists filter by recipe, schedule and state; bad
// filters are field errors.
func TestFabListFilters(t *testing.T) {
	st := newSecStack(t)
	svc := newFabService(st.store, st.svc)
	ctx := t.Context()
	md := func(user string) events.Metadata { return events.Metadata{OrgID: "org-1", UserID: user, Role: "admin"} }
	for _, name := range []string{"alpha", "beta"} {
		if _, _, err := svc.SaveRecipe(ctx, fab.SaveRecipe{Name: name, Kind: process.KindIon, Recipe: json.RawMessage(`{"steps":100000}`),
			Meta: md("u-eng")}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.ApproveRecipe(ctx, fab.ApproveRecipe{Name: name, Version: 1, Meta: md("u-admin")}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreateLot(ctx, fab.CreateLot{LotID: "LOT-" + name, Recipe: events.RecipeRef{Name: name}, Wafers: []string{"W1"},
			Production: true, Meta: md("u-op")}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.CreateSchedule(ctx, fab.CreateSchedule{Name: name, Cron: "@hourly", Target: events.ScheduleTarget{
			Kind: process.KindIon, Recipe: events.RecipeRef{Name: name}}, Meta: md("u-eng")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.CommandLot(ctx, fab.LotCommand{LotID: "LOT-beta", Verb: fab.LotCancel, Meta: md("u-op")}); err != nil {
		t.Fatal(err)
	}
	if err := st.runner.WaitFor(ctx, mustPos(t, st.head(t))); err != nil {
		t.Fatal(err)
	}
	scheds := st.fab.Schedules("org-1")
	if _, _, err := svc.CommandSchedule(ctx, fab.ScheduleCommand{ScheduleID: scheds[0].ScheduleID, Verb: fab.LotPause, Meta: md("u-eng")}); err != nil {
		t.Fatal(err)
	}
	head := st.head(t)
	get := func(path string) (int, []string) {
		t.Helper()
		res := st.do(t, http.MethodGet, path, "", append(as(t, RoleViewer, "org-1"), HeaderMinPosition, head)...)
		var out struct {
			Lots []struct {
				LotID string `json:"lot_id"`
			} `json:"lots"`
			Schedules []struct {
				Name string `json:"name"`
			} `json:"schedules"`
		}
		_ = json.Unmarshal(res.Body, &out)
		var ids []string
		for _, l := range out.Lots {
			ids = append(ids, l.LotID)
		}
		for _, s := range out.Schedules {
			ids = append(ids, s.Name)
		}
		return res.Status, ids
	}
	pausedName := scheds[0].Name
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/api/lots?recipe=alpha", []string{"LOT-alpha"}},
		{"/api/lots?state=cancelled", []string{"LOT-beta"}},
		{"/api/lots?state=active&recipe=beta", nil},
		{"/api/schedules?recipe=beta", []string{"beta"}},
		{"/api/schedules?state=paused", []string{pausedName}},
		{"/api/schedules?state=done", nil},
	} {
		if status, got := get(tt.path); status != http.StatusOK || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("GET %s = %d %v, want %v", tt.path, status, got, tt.want)
		}
	}
	if status, got := get("/api/lots?limit=1"); status != http.StatusOK || len(got) != 1 {
		t.Errorf("GET /api/lots?limit=1 = %d %v", status, got)
	}
	for _, p := range []string{"/api/lots?state=bogus", "/api/lots?limit=0", "/api/lots?recipe=a%20b", "/api/schedules?state=x"} {
		if res := st.do(t, http.MethodGet, p, "", as(t, RoleViewer, "org-1")...); res.Status != http.StatusUnprocessableEntity {
			t.Errorf("GET %s = %d %s, want 422", p, res.Status, res.Body)
		}
	}
}
