package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fab operations through the real binary: the recipe library and its
// approval step, lots, schedules across kill -9, fair sharing between
// organisations. Every check is made against what the server serves from
// its log.

// smallIon is a short implant: about two seconds of process time.
func smallIon() map[string]any {
	return map[string]any{"species": "B", "energy_kev": 5.0, "dose_atoms_cm2": 1e14, "tilt_deg": 7.0, "twist_deg": 0.0,
		"beam_current_ma": 2.0, "scan_speed_mm_s": 50.0, "wafer_diameter_mm": 200}
}

// saveRecipe saves a version and returns its number.
func (s *server) saveRecipe(t testing.TB, tok, name string, recipe map[string]any) int {
	t.Helper()
	r := s.do(t, "POST", "/api/recipes", tok, map[string]any{"name": name, "kind": "ion", "recipe": recipe})
	if r.status != 201 {
		t.Fatalf("POST /api/recipes = %d %s", r.status, r.body)
	}
	vs := r.json(t)["versions"].([]any)
	return int(vs[len(vs)-1].(map[string]any)["version"].(float64))
}

func (s *server) approve(t testing.TB, tok, name string, v int) {
	t.Helper()
	if r := s.do(t, "POST", fmt.Sprintf("/api/recipes/%s/versions/%d/approve", name, v), tok, nil); r.status != 200 {
		t.Fatalf("approve %s v%d = %d %s", name, v, r.status, r.body)
	}
}

// runOrigin reads the origin recorded in a run's first event.
func (s *server) runOrigin(t testing.TB, tok, jobID string) map[string]any {
	t.Helper()
	lines := s.events(t, jobID, tok)
	if len(lines) == 0 || lines[0].Type != "RunRequested.v1" && lines[0].Type != "RunRequested" {
		t.Fatalf("job %s: first event %v, want RunRequested", jobID, lines)
	}
	var req struct {
		Origin map[string]any `json:"origin"`
	}
	if err := json.Unmarshal(lines[0].Data, &req); err != nil {
		t.Fatal(err)
	}
	return req.Origin
}

// fieldNames lists the fields of a 422 body.
func fieldNames(t testing.TB, r reply) []string {
	t.Helper()
	if r.status != 422 {
		t.Fatalf("status %d, want 422: %s", r.status, r.body)
	}
	var b struct {
		Error struct {
			Fields []struct {
				Field string `json:"field"`
			} `json:"fields"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &b)
	var out []string
	for _, f := range b.Error.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestRecipeApprovalGatesProductionRuns(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0")
	eng, admin, op := token(t, "engineer", "org-1"), token(t, "admin", "org-1"), token(t, "operator", "org-1")

	v1 := s.saveRecipe(t, eng, "boron_5kev", smallIon())
	run := map[string]any{"recipe": map[string]any{"name": "boron_5kev", "version": v1}, "wafer_id": "W01"}

	// Unapproved: no production run, with the reason.
	r := s.do(t, "POST", "/api/ion/runs", op, run)
	if r.status != 409 || !strings.Contains(string(r.body), "not approved") {
		t.Fatalf("production run of an unapproved version = %d %s, want 409 not approved", r.status, r.body)
	}
	// Only admins approve, and never their own version.
	if r := s.do(t, "POST", "/api/recipes/boron_5kev/versions/1/approve", eng, nil); r.status != 403 {
		t.Fatalf("engineer approves = %d, want 403", r.status)
	}
	self := s.saveRecipe(t, admin, "admin_own", smallIon())
	if r := s.do(t, "POST", fmt.Sprintf("/api/recipes/admin_own/versions/%d/approve", self), admin, nil); r.status != 409 {
		t.Fatalf("admin approves own version = %d %s, want 409", r.status, r.body)
	}
	s.approve(t, admin, "boron_5kev", v1)

	// Approved: the run starts and records the resolved recipe and version.
	runID, jobID := s.create(t, "ion", op, run)
	if got := s.waitRun(t, "ion", runID, op, 60*time.Second); got["status"] != "completed" {
		t.Fatalf("run from the library = %v", got["status"])
	}
	o := s.runOrigin(t, eng, jobID)
	rec, _ := o["recipe"].(map[string]any)
	if rec["name"] != "boron_5kev" || rec["version"] != float64(v1) || o["production"] != true {
		t.Errorf("origin = %v, want boron_5kev v%d production", o, v1)
	}
	// No version: the latest approved, even after a newer draft.
	draft := smallIon()
	draft["energy_kev"] = 7.5
	v2 := s.saveRecipe(t, eng, "boron_5kev", draft)
	_, job2 := s.create(t, "ion", op, map[string]any{"recipe": map[string]any{"name": "boron_5kev"}})
	if rec := s.runOrigin(t, eng, job2)["recipe"].(map[string]any); rec["version"] != float64(v1) {
		t.Errorf("latest approved resolved to v%v, want v%d", rec["version"], v1)
	}
	// An engineer may try the draft as an engineering run; an operator may not.
	if r := s.do(t, "POST", "/api/ion/runs", op, map[string]any{"recipe": map[string]any{"name": "boron_5kev", "version": v2}, "engineering": true}); r.status != 403 {
		t.Errorf("operator engineering run = %d, want 403", r.status)
	}
	_, job3 := s.create(t, "ion", eng, map[string]any{"recipe": map[string]any{"name": "boron_5kev", "version": v2}, "engineering": true})
	if o := s.runOrigin(t, eng, job3); o["production"] == true || o["recipe"].(map[string]any)["version"] != float64(v2) {
		t.Errorf("engineering run origin = %v", o)
	}
	// The diff names the changed field.
	d := s.do(t, "GET", "/api/recipes/boron_5kev/diff?from=1&to=2", op, nil).json(t)
	ch := d["changes"].([]any)
	if len(ch) != 1 || ch[0].(map[string]any)["field"] != "energy_kev" {
		t.Errorf("diff = %v, want energy_kev only", ch)
	}
	if v := s.do(t, "GET", "/api/recipes/boron_5kev/versions/2", op, nil).json(t)["version"].(map[string]any); v["approved"] != false {
		t.Errorf("version 2 = %v, want unapproved", v)
	}
	// Another organisation sees nothing of it.
	if r := s.do(t, "GET", "/api/recipes/boron_5kev", token(t, "admin", "org-2"), nil); r.status != 404 {
		t.Errorf("other organisation GET = %d, want 404", r.status)
	}
	// Audited: who saved and who approved.
	a := s.do(t, "GET", "/api/audit?type=recipe_approved", admin, nil)
	if !strings.Contains(string(a.body), "admin-user") {
		t.Errorf("audit of approvals = %s", a.body)
	}

	// Bad input on every new endpoint gets field errors.
	bad := []struct {
		method, path string
		tok          string
		body         any
		field        string
	}{
		{"POST", "/api/recipes", eng, map[string]any{"name": "bad-name", "kind": "ion", "recipe": smallIon()}, "name"},
		{"POST", "/api/recipes", eng, map[string]any{"name": "x", "kind": "ion", "recipe": map[string]any{"species": "Xx", "energy_kev": 5.0, "dose_atoms_cm2": 1e12, "beam_current_ma": 1.0}}, "recipe.species"},
		{"POST", "/api/recipes", eng, map[string]any{"name": "x", "kind": "ion", "recipe": map[string]any{"species": "B", "energy_kev": 500.0, "dose_atoms_cm2": 1e12, "beam_current_ma": 1.0}}, "recipe.energy_kev"},
		{"POST", "/api/recipes", eng, map[string]any{"name": "x", "kind": "plasma", "recipe": smallIon()}, "kind"},
		{"POST", "/api/recipes", eng, map[string]any{"name": "x", "kind": "ion", "recipe": smallIon(), "extra": 1}, "extra"},
		{"POST", "/api/recipes/boron_5kev/versions/x/approve", admin, nil, "version"},
		{"GET", "/api/recipes/boron_5kev/diff?from=9", op, nil, "from"},
		{"POST", "/api/ion/runs", op, map[string]any{"recipe": map[string]any{"name": "boron_5kev"}, "energy_kev": 9.0}, "energy_kev"},
		{"POST", "/api/ion/runs", op, map[string]any{"recipe": map[string]any{"version": 0}}, "recipe.name"},
		{"POST", "/api/ion/runs", op, map[string]any{"recipe": map[string]any{"name": "nope"}}, "recipe.name"},
		{"POST", "/api/lots", op, map[string]any{"recipe": map[string]any{"name": "boron_5kev"}, "wafer_count": 26}, "wafer_count"},
		{"POST", "/api/lots", op, map[string]any{"recipe": map[string]any{"name": "boron_5kev"}, "wafers": []string{"A", "A"}}, "wafers[1]"},
		{"POST", "/api/lots", op, map[string]any{"wafer_count": 2}, "recipe"},
		{"POST", "/api/lots/LOT-1/cancel", op, map[string]any{"reason": 5}, "reason"},
		{"POST", "/api/schedules", eng, map[string]any{"recipe": map[string]any{"name": "boron_5kev"}, "kind": "ion", "cron": "every day"}, "cron"},
		{"POST", "/api/schedules", eng, map[string]any{"recipe": map[string]any{"name": "boron_5kev"}, "kind": "ion"}, "cron"},
		{"POST", "/api/schedules", eng, map[string]any{"recipe": map[string]any{"name": "boron_5kev"}, "kind": "ion", "at": "tomorrow"}, "at"},
		{"POST", "/api/schedules", eng, map[string]any{"recipe": map[string]any{"name": "nope"}, "kind": "ion", "cron": "@hourly"}, "target.recipe.name"},
		{"POST", "/api/schedules/sch_x/pause", eng, map[string]any{"x": 1}, "x"},
	}
	for _, b := range bad {
		fields := fieldNames(t, s.do(t, b.method, b.path, b.tok, b.body))
		found := false
		for _, f := range fields {
			found = found || f == b.field
		}
		if !found {
			t.Errorf("%s %s %v: fields %v, want %s", b.method, b.path, b.body, fields, b.field)
		}
	}
}

// lotView polls a lot until every wafer is finished.
func (s *server) waitLot(t testing.TB, tok, lotID string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	var last map[string]any
	for time.Now().Before(deadline) {
		r := s.do(t, "GET", "/api/lots/"+lotID, tok, nil)
		if r.status == 200 {
			last = r.json(t)
			done := 0
			for _, w := range last["wafer_runs"].([]any) {
				switch w.(map[string]any)["status"] {
				case "completed", "failed", "cancelled":
					done++
				}
			}
			if done == len(last["wafer_runs"].([]any)) {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("lot %s not finished in %s; last %v", lotID, within, last)
	return nil
}

func TestLotOf25WithOneFaultyWafer(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0", "--allow-fault-injection", "--queue-limit", "4")
	eng, admin, op := token(t, "engineer", "org-1"), token(t, "admin", "org-1"), token(t, "operator", "org-1")
	v := s.saveRecipe(t, eng, "lot_recipe", smallIon())
	s.approve(t, admin, "lot_recipe", v)

	r := s.do(t, "POST", "/api/lots", op, map[string]any{"recipe": map[string]any{"name": "lot_recipe"}, "wafer_count": 25,
		"simulate_faults": map[string]any{"W07": map[string]any{"kind": "permanent", "at_progress_pct": 40}}})
	if r.status != 201 {
		t.Fatalf("POST /api/lots = %d %s", r.status, r.body)
	}
	start := r.json(t)
	lotID := start["lot"].(map[string]any)["lot_id"].(string)
	for _, w := range start["wafers"].([]any) {
		if e := w.(map[string]any)["error"]; e != nil {
			t.Fatalf("wafer not started: %v", w)
		}
	}
	lot := s.waitLot(t, op, lotID, 120*time.Second)
	for _, w := range lot["wafer_runs"].([]any) {
		w := w.(map[string]any)
		want := "completed"
		if w["wafer_id"] == "W07" {
			want = "failed"
		}
		if w["status"] != want {
			t.Errorf("wafer %v = %v (%v), want %s", w["wafer_id"], w["status"], w["error_message"], want)
		}
	}
	if lot["status"] != "partially_failed" {
		t.Errorf("lot status = %v, want partially_failed", lot["status"])
	}
	counts := lot["counts"].(map[string]any)
	if counts["completed"] != 24.0 || counts["failed"] != 1.0 {
		t.Errorf("counts = %v", counts)
	}
	res := lot["results"].(map[string]any)
	if len(res) == 0 {
		t.Errorf("lot has no aggregate results")
	}
	for k, st := range res {
		if n := st.(map[string]any)["n"]; n != 24.0 {
			t.Errorf("result %s over %v wafers, want 24", k, n)
		}
	}
	for k, pts := range lot["spc_points"].(map[string]any) {
		if len(pts.([]any)) != 24 {
			t.Errorf("spc points of %s = %d, want 24", k, len(pts.([]any)))
		}
	}
	// Each wafer's run records its lot, wafer and recipe.
	w1 := lot["wafer_runs"].([]any)[0].(map[string]any)
	o := s.runOrigin(t, eng, w1["job_id"].(string))
	if o["lot_id"] != lotID || o["wafer_id"] != "W01" || o["recipe"].(map[string]any)["version"] != float64(v) {
		t.Errorf("wafer run origin = %v", o)
	}

	// A lot-level retry runs the failed wafer again (a new job of its run,
	// without the fault: "after the tool was repaired"); the others are
	// left alone, and the lot completes.
	var failedJob string
	for _, w := range lot["wafer_runs"].([]any) {
		if w := w.(map[string]any); w["wafer_id"] == "W07" {
			failedJob = w["job_id"].(string)
		}
	}
	r = s.do(t, "POST", "/api/lots/"+lotID+"/retry", op, map[string]any{"reason": "beam line repaired"})
	if r.status != 202 {
		t.Fatalf("lot retry = %d %s", r.status, r.body)
	}
	retried := r.json(t)["wafers"].([]any)
	if len(retried) != 1 || retried[0].(map[string]any)["wafer_id"] != "W07" || retried[0].(map[string]any)["error"] != nil ||
		retried[0].(map[string]any)["job_id"] == failedJob {
		t.Fatalf("lot retry wafers = %v, want W07 on a new job", retried)
	}
	lot = s.waitLot(t, op, lotID, 60*time.Second)
	if lot["status"] != "completed" || lot["retries"] != 1.0 {
		t.Errorf("lot after retry: status %v, retries %v; want completed, 1", lot["status"], lot["retries"])
	}
	for _, w := range lot["wafer_runs"].([]any) {
		w := w.(map[string]any)
		if want := map[bool]float64{true: 1, false: 0}[w["wafer_id"] == "W07"]; w["retries"] != want {
			t.Errorf("wafer %v retries %v, want %v", w["wafer_id"], w["retries"], want)
		}
	}
	if r := s.do(t, "POST", "/api/lots/"+lotID+"/retry", op, nil); r.status != 409 || !strings.Contains(string(r.body), "no failed wafer") {
		t.Errorf("retry of a lot with no failed wafer = %d %s, want 409", r.status, r.body)
	}
	if a := s.do(t, "GET", "/api/audit?type=lot_retry_requested", admin, nil); !strings.Contains(string(a.body), "operator-user") {
		t.Errorf("audit of lot retries = %s", a.body)
	}
}

func TestLotCancelStopsRemainingWafers(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "20", "--queue-limit", "2")
	eng, admin, op := token(t, "engineer", "org-1"), token(t, "admin", "org-1"), token(t, "operator", "org-1")
	slow := smallIon()
	slow["dose_atoms_cm2"] = 1e15 // about 25 s of process time, a second of wall time
	v := s.saveRecipe(t, eng, "slow", slow)
	s.approve(t, admin, "slow", v)
	r := s.do(t, "POST", "/api/lots", op, map[string]any{"recipe": map[string]any{"name": "slow"}, "wafer_count": 8})
	if r.status != 201 {
		t.Fatalf("POST /api/lots = %d %s", r.status, r.body)
	}
	lotID := r.json(t)["lot"].(map[string]any)["lot_id"].(string)
	// Cancel once the first wafers run.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c := s.do(t, "GET", "/api/lots/"+lotID, op, nil).json(t)["counts"].(map[string]any); c["running"] != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := s.do(t, "POST", "/api/lots/"+lotID+"/cancel", op, map[string]any{"reason": "tool down"}); c.status != 202 {
		t.Fatalf("lot cancel = %d %s", c.status, c.body)
	}
	lot := s.waitLot(t, op, lotID, 60*time.Second)
	completed := 0
	for _, w := range lot["wafer_runs"].([]any) {
		switch w.(map[string]any)["status"] {
		case "cancelled":
		case "completed":
			completed++
		default:
			t.Errorf("wafer %v, want cancelled", w)
		}
	}
	if completed > 2 {
		t.Errorf("%d wafers completed after the lot was cancelled while the first two ran", completed)
	}
	if lot["status"] != "cancelled" && lot["status"] != "partially_failed" {
		t.Errorf("lot status = %v", lot["status"])
	}
	if c := s.do(t, "POST", "/api/lots/"+lotID+"/cancel", op, nil); c.status != 409 {
		t.Errorf("second cancel = %d, want 409", c.status)
	}
}

// A schedule firing every minute at time scale 60 (every second of wall
// time) fires each slot once across a kill -9 and a restart; the slots the
// server missed while down are caught up, once. The kill -9 comes in the
// middle of a lot's creation (a test hook makes the server SIGKILL itself
// right after creating the lot's fourth run, before the lot records it):
// after the restart the lot has every wafer's run, each exactly once.
func TestScheduleAndLotCreationSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--time-scale", "60", "--queue-limit", "8"}
	t.Setenv("SPECTRA_TEST_KILL_AFTER_LOT_RUNS", "4")
	s := startServer(t, dir, args...)
	os.Setenv("SPECTRA_TEST_KILL_AFTER_LOT_RUNS", "") // the restarted server runs without the hook (t.Setenv restores it)
	eng, admin, op := token(t, "engineer", "org-1"), token(t, "admin", "org-1"), token(t, "operator", "org-1")
	v := s.saveRecipe(t, eng, "nightly", smallIon())
	s.approve(t, admin, "nightly", v)
	r := s.do(t, "POST", "/api/schedules", eng, map[string]any{"name": "every minute", "cron": "* * * * *",
		"kind": "ion", "recipe": map[string]any{"name": "nightly"}})
	if r.status != 201 {
		t.Fatalf("POST /api/schedules = %d %s", r.status, r.body)
	}
	id := r.json(t)["schedule_id"].(string)
	firings := func() []any {
		return s.do(t, "GET", "/api/schedules/"+id, eng, nil).json(t)["firings"].([]any)
	}
	waitFirings := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for len(firings()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("schedule fired %d times, want %d", len(firings()), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFirings(3)

	// The lot's creation kills the server part way.
	const lotID, wafers = "LOT-KILL9", 10
	body, _ := json.Marshal(map[string]any{"recipe": map[string]any{"name": "nightly"}, "wafer_count": wafers, "lot_id": lotID})
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/api/lots", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+op)
	req.Header.Set("Idempotency-Key", "kill9-lot")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("POST /api/lots = %d: the server should have killed itself creating the lot", resp.StatusCode)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not die creating the lot")
	}
	if !strings.Contains(s.logs.String(), "test hook: killing the process") {
		t.Fatalf("the server died, but not by the test hook:\n%s", tail(s.logs.String(), 20))
	}
	time.Sleep(2500 * time.Millisecond) // slots pass while the server is down
	s.args = args
	s.start()

	t.Run("schedule_fires_once_per_slot", func(t *testing.T) {
		before := len(firings())
		waitFirings(before + 4)
		fs := firings()
		var slots []time.Time
		seen := map[string]bool{}
		for _, f := range fs {
			slot := f.(map[string]any)["slot"].(string)
			if seen[slot] {
				t.Fatalf("slot %s fired twice: %v", slot, fs)
			}
			seen[slot] = true
			ts, _ := time.Parse(time.RFC3339Nano, slot)
			slots = append(slots, ts)
			if f.(map[string]any)["skipped"] != nil {
				t.Errorf("firing %v skipped slots (the catch-up window is 10)", f)
			}
		}
		for i := 1; i < len(slots); i++ {
			if d := slots[i].Sub(slots[i-1]); d != time.Minute {
				t.Errorf("slots %s and %s are %s apart, want one minute (no gap, no duplicate)", slots[i-1], slots[i], d)
			}
		}
		// One run per slot, each recording its slot.
		deadline := time.Now().Add(30 * time.Second)
		perSlot := map[string]int{}
		for time.Now().Before(deadline) {
			clear(perSlot)
			list := s.do(t, "GET", "/api/ion/runs?limit=100", eng, nil).json(t)["runs"].([]any)
			for _, run := range list {
				o := s.runOrigin(t, eng, run.(map[string]any)["job_id"].(string))
				if o["schedule_id"] == id {
					ts, _ := time.Parse(time.RFC3339Nano, o["fired_slot"].(string))
					perSlot[ts.UTC().Format(time.RFC3339)]++
				}
			}
			if len(perSlot) >= len(slots) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, sl := range slots {
			if n := perSlot[sl.UTC().Format(time.RFC3339)]; n != 1 {
				t.Errorf("slot %s started %d runs, want 1", sl, n)
			}
		}
		// Pause: no slot fires while paused.
		if r := s.do(t, "POST", "/api/schedules/"+id+"/pause", eng, nil); r.status != 202 {
			t.Fatalf("pause = %d %s", r.status, r.body)
		}
		n := len(firings())
		time.Sleep(2 * time.Second)
		if m := len(firings()); m != n {
			t.Errorf("paused schedule fired %d times", m-n)
		}
	})

	t.Run("lot_has_every_wafer_once", func(t *testing.T) {
		// The lot reconciler completes it at start; its wafers run.
		lot := s.waitLot(t, op, lotID, 60*time.Second)
		runIDs := map[string]string{}
		for _, w := range lot["wafer_runs"].([]any) {
			w := w.(map[string]any)
			if w["status"] != "completed" {
				t.Errorf("wafer %v = %v %v, want completed", w["wafer_id"], w["status"], w["error_message"])
			}
			run, _ := w["run_id"].(string)
			if prev, dup := runIDs[run]; dup || run == "" {
				t.Errorf("wafer %v has run %q (wafer %s has it too)", w["wafer_id"], run, prev)
			}
			runIDs[run] = w["wafer_id"].(string)
		}
		if len(runIDs) != wafers || len(lot["members"].([]any)) != wafers {
			t.Errorf("lot has %d runs and %d members, want %d", len(runIDs), len(lot["members"].([]any)), wafers)
		}
		// No wafer got a second run: the runs recording the lot are the
		// lot's, one per wafer.
		perWafer := map[string]int{}
		for _, run := range s.do(t, "GET", "/api/ion/runs?limit=100", op, nil).json(t)["runs"].([]any) {
			run := run.(map[string]any)
			if o := s.runOrigin(t, eng, run["job_id"].(string)); o["lot_id"] == lotID {
				perWafer[o["wafer_id"].(string)]++
				if runIDs[run["run_id"].(string)] != o["wafer_id"] {
					t.Errorf("run %s of wafer %v is not the lot's run of that wafer", run["run_id"], o["wafer_id"])
				}
			}
		}
		for i := 1; i <= wafers; i++ {
			if w := fmt.Sprintf("W%02d", i); perWafer[w] != 1 {
				t.Errorf("wafer %s has %d runs, want 1", w, perWafer[w])
			}
		}
		if !strings.Contains(s.logs.String(), "lot completed after its creation was cut short") {
			t.Errorf("the restarted server did not log completing the lot")
		}
		// The client, whose request died with the server, sends it again
		// with its Idempotency-Key: it gets the lot, not a second one.
		again := s.do(t, "POST", "/api/lots", op, json.RawMessage(body), "Idempotency-Key", "kill9-lot")
		if again.status != 200 {
			t.Fatalf("repeated POST /api/lots = %d %s, want 200", again.status, again.body)
		}
		for _, w := range again.json(t)["wafers"].([]any) {
			w := w.(map[string]any)
			if runIDs[w["run_id"].(string)] != w["wafer_id"] {
				t.Errorf("repeated request: wafer %v run %v, not the lot's", w["wafer_id"], w["run_id"])
			}
		}
	})
}

// Two organisations on one queue of limit 2: the first submits 200 runs,
// the second 10 afterwards. Each of the second's runs waits behind a
// bounded number of the first's (fair sharing), not behind its backlog.
func TestFairSharingBetweenOrganisations(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0", "--queue-limit", "2")
	a, b := token(t, "engineer", "org-a"), token(t, "engineer", "org-b")
	type sub struct{ run, job string }
	var (
		mu   sync.Mutex
		subA []sub
		wg   sync.WaitGroup
	)
	work := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				r, j := s.create(t, "ion", a, smallIon())
				mu.Lock()
				subA = append(subA, sub{r, j})
				mu.Unlock()
			}
		}()
	}
	for range 200 {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	var subB []sub
	for range 10 {
		r, j := s.create(t, "ion", b, smallIon())
		subB = append(subB, sub{r, j})
	}
	for _, x := range subB {
		s.waitRun(t, "ion", x.run, b, 120*time.Second)
	}
	first := func(tok, job, typ string) uint64 {
		for _, l := range s.events(t, job, tok) {
			if strings.HasPrefix(l.Type, typ) {
				return l.Position
			}
		}
		return 0
	}
	var startsA []uint64
	for _, x := range subA {
		if p := first(a, x.job, "RunStarted"); p > 0 {
			startsA = append(startsA, p)
		}
	}
	sort.Slice(startsA, func(i, j int) bool { return startsA[i] < startsA[j] })
	between := func(lo, hi uint64) int {
		n := 0
		for _, p := range startsA {
			if p > lo && p < hi {
				n++
			}
		}
		return n
	}
	// The backlog the second organisation found: the first's runs not
	// started when its first run was queued. Without fair sharing each
	// of its runs would wait behind all of them.
	q0 := first(b, subB[0].job, "RunQueued")
	backlog := 200 - between(0, q0)
	worst := 0
	for i, x := range subB {
		q, st := first(b, x.job, "RunQueued"), first(b, x.job, "RunStarted")
		ahead := between(q, st)
		worst = max(worst, ahead)
		// Slots alternate between the organisations: its i-th run waits
		// for its own i earlier runs, so for about as many of the first's.
		if bound := i + 3; ahead > bound {
			t.Errorf("org-b run %d waited behind %d of org-a's runs, want ≤ %d", i, ahead, bound)
		}
	}
	t.Logf("org-a backlog when org-b arrived: %d runs; org-b's runs waited behind at most %d of them", backlog, worst)
	if backlog < 30 {
		t.Errorf("org-a's backlog was only %d runs when org-b arrived: the test shows nothing", backlog)
	}
}

// spectra recipes, lots and schedules against a real server.
func TestFabCLI(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0")
	eng, admin, op := token(t, "engineer", "org-1"), token(t, "admin", "org-1"), token(t, "operator", "org-1")
	run := func(tok string, args ...string) string {
		t.Helper()
		out, errOut, code := s.cli(t, tok, args...)
		if code != 0 {
			t.Fatalf("spectra %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	path := writeRecipe(t, smallIon())
	if out := run(eng, "recipes", "save", "cli_boron", path, "--kind", "ion", "--comment", "first"); !strings.Contains(out, "version 1 saved") {
		t.Errorf("recipes save: %q", out)
	}
	draft := smallIon()
	draft["energy_kev"] = 6.0
	run(eng, "recipes", "save", "cli_boron", writeRecipe(t, draft), "--kind", "ion")
	// Unapproved: a lot is refused with the reason, and the CLI says it.
	if out, errOut, code := s.cli(t, op, "lots", "start", "cli_boron", "--wafers", "2"); code == 0 || !strings.Contains(errOut, "no approved version") {
		t.Errorf("lots start of an unapproved recipe: exit %d %q %q", code, out, errOut)
	}
	run(admin, "recipes", "approve", "cli_boron", "1", "--comment", "qualified")
	if out := run(op, "recipes", "list"); !strings.Contains(out, "cli_boron") || !strings.Contains(out, "ion") {
		t.Errorf("recipes list: %q", out)
	}
	if out := run(op, "recipes", "show", "cli_boron"); !strings.Contains(out, "by admin-user") {
		t.Errorf("recipes show: %q", out)
	}
	if out := run(op, "recipes", "diff", "cli_boron"); !strings.Contains(out, "energy_kev") || !strings.Contains(out, "6") {
		t.Errorf("recipes diff: %q", out)
	}
	out := run(op, "lots", "start", "cli_boron@1", "--wafers", "3", "--lot-id", "LOT-CLI-1")
	if !strings.Contains(out, "lot LOT-CLI-1 started from cli_boron@1") || strings.Count(out, "ION-") != 3 {
		t.Errorf("lots start: %q", out)
	}
	s.waitLot(t, op, "LOT-CLI-1", 60*time.Second)
	if out := run(op, "lots", "show", "LOT-CLI-1"); !strings.Contains(out, "completed") || !strings.Contains(out, "final_dose_atoms_cm2") {
		t.Errorf("lots show: %q", out)
	}
	if out := run(op, "lots", "list"); !strings.Contains(out, "LOT-CLI-1") || !strings.Contains(out, "3/3") {
		t.Errorf("lots list: %q", out)
	}
	if _, errOut, code := s.cli(t, op, "lots", "retry", "LOT-CLI-1"); code == 0 || !strings.Contains(errOut, "no failed wafer") {
		t.Errorf("lots retry of a lot without failed wafers: exit %d %s", code, errOut)
	}
	if out := run(op, "lots", "retry", "LOT-CLI-1", "--wafer-ids", "W01"); !strings.Contains(out, "retry sent to 0 of 1") {
		t.Errorf("lots retry of a completed wafer: %q", out)
	}
	if _, errOut, code := s.cli(t, op, "lots", "cancel", "LOT-CLI-1"); code != 0 {
		t.Errorf("lots cancel of a finished lot: exit %d %s", code, errOut)
	}
	out = run(eng, "schedules", "create", "cli_boron", "--kind", "ion", "--cron", "0 3 * * *", "--name", "nightly", "--wafers", "2")
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if !strings.HasPrefix(id, "sch_") || !strings.Contains(out, "0 3 * * *") {
		t.Fatalf("schedules create: %q", out)
	}
	if out := run(eng, "schedules", "pause", id); !strings.Contains(out, "paused") {
		t.Errorf("schedules pause: %q", out)
	}
	if out := run(op, "schedules", "list"); !strings.Contains(out, id) || !strings.Contains(out, "paused") {
		t.Errorf("schedules list: %q", out)
	}
	if out := run(op, "schedules", "show", id); !strings.Contains(out, "SLOT") {
		t.Errorf("schedules show: %q", out)
	}
	if _, _, code := s.cli(t, op, "recipes"); code != 2 {
		t.Errorf("spectra recipes without a command: exit %d, want 2", code)
	}
}

// Two nodes on one event store both run a schedule worker: each slot is
// claimed by one of them (an expected-revision append on the schedule's
// stream) and starts one run.
func TestScheduleFiresOncePerSlotAcrossNodes(t *testing.T) {
	natsAddr := freePort(t)
	t.Setenv("SPECTRA_NATS_PASSWORD", "fab-test-nats-password-0123456789") // both nodes inherit it
	a := startServer(t, t.TempDir(), "--time-scale", "60", "--nats-listen", natsAddr, "--nats-user", "spectra", "--node", "node-a")
	b := startServer(t, t.TempDir(), "--time-scale", "60", "--nats", "nats://"+natsAddr, "--nats-user", "spectra", "--node", "node-b")
	eng, admin := token(t, "engineer", "org-1"), token(t, "admin", "org-1")
	v := a.saveRecipe(t, eng, "both", smallIon())
	a.approve(t, admin, "both", v)
	r := a.do(t, "POST", "/api/schedules", eng, map[string]any{"cron": "* * * * *", "kind": "ion", "recipe": map[string]any{"name": "both"}})
	if r.status != 201 {
		t.Fatalf("POST /api/schedules = %d %s", r.status, r.body)
	}
	id := r.json(t)["schedule_id"].(string)
	var fs []any
	deadline := time.Now().Add(30 * time.Second)
	for len(fs) < 6 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		fs = b.do(t, "GET", "/api/schedules/"+id, eng, nil).json(t)["firings"].([]any)
	}
	if len(fs) < 6 {
		t.Fatalf("%d firings in 30 s, want 6", len(fs))
	}
	seen, nodes := map[string]bool{}, map[string]int{}
	var prev time.Time
	for _, f := range fs {
		f := f.(map[string]any)
		slot, _ := time.Parse(time.RFC3339Nano, f["slot"].(string))
		if seen[f["slot"].(string)] {
			t.Errorf("slot %s fired twice", f["slot"])
		}
		if !prev.IsZero() && slot.Sub(prev) != time.Minute {
			t.Errorf("slots %s and %s are not one minute apart", prev, slot)
		}
		seen[f["slot"].(string)], prev = true, slot
		nodes[fmt.Sprint(f["node"])]++
	}
	t.Logf("firings by node: %v", nodes)
	// One run per slot, whichever node created it.
	perSlot := map[string]int{}
	for time.Now().Before(deadline) {
		clear(perSlot)
		for _, run := range a.do(t, "GET", "/api/ion/runs?limit=100", eng, nil).json(t)["runs"].([]any) {
			if o := a.runOrigin(t, eng, run.(map[string]any)["job_id"].(string)); o["schedule_id"] == id {
				perSlot[o["fired_slot"].(string)]++
			}
		}
		if len(perSlot) >= len(fs) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, f := range fs {
		slot, _ := time.Parse(time.RFC3339Nano, f.(map[string]any)["slot"].(string))
		n := 0
		for s, c := range perSlot {
			if ts, _ := time.Parse(time.RFC3339Nano, s); ts.Equal(slot) {
				n += c
			}
		}
		if n != 1 {
			t.Errorf("slot %s started %d runs, want 1", slot.Format(time.RFC3339), n)
		}
	}
}

// A paused lot stays paused: a wafer that starts after the pause (its
// queue slot came free) is paused too, and resuming the lot resumes it.
func TestLotPauseHoldsWafersThatStartLater(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "20", "--queue-limit", "2")
	eng, admin, op := token(t, "engineer", "org-1"), token(t, "admin", "org-1"), token(t, "operator", "org-1")
	slow := smallIon()
	slow["dose_atoms_cm2"] = 1e15
	v := s.saveRecipe(t, eng, "held", slow)
	s.approve(t, admin, "held", v)
	r := s.do(t, "POST", "/api/lots", op, map[string]any{"recipe": map[string]any{"name": "held"}, "wafers": []string{"W01", "W02", "W03"}})
	if r.status != 201 {
		t.Fatalf("POST /api/lots = %d %s", r.status, r.body)
	}
	lotID := r.json(t)["lot"].(map[string]any)["lot_id"].(string)
	wafers := func() map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, w := range s.do(t, "GET", "/api/lots/"+lotID, op, nil).json(t)["wafer_runs"].([]any) {
			out[w.(map[string]any)["wafer_id"].(string)] = w.(map[string]any)
		}
		return out
	}
	withStatus := func(ws map[string]map[string]any, status string) []string {
		var ids []string
		for id, w := range ws {
			if w["status"] == status {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return ids
	}
	waitWafers := func(what string, cond func(map[string]map[string]any) bool) map[string]map[string]any {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			ws := wafers()
			if cond(ws) {
				return ws
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: wafers %v", what, ws)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Which two wafers get the queue's two slots first is the scheduler's
	// (the three runs are created a few milliseconds apart, and admission
	// follows their arrival at the scheduler): the test takes whichever
	// two run, and the third is the wafer that starts later.
	ws := waitWafers("two wafers running, one queued", func(ws map[string]map[string]any) bool {
		return len(withStatus(ws, "running")) == 2 && len(withStatus(ws, "queued")) == 1
	})
	running, later := withStatus(ws, "running"), withStatus(ws, "queued")[0]
	if r := s.do(t, "POST", "/api/lots/"+lotID+"/pause", op, nil); r.status != 202 {
		t.Fatalf("lot pause = %d %s", r.status, r.body)
	}
	waitWafers("running wafers paused", func(ws map[string]map[string]any) bool {
		return ws[running[0]]["status"] == "paused" && ws[running[1]]["status"] == "paused"
	})
	// One paused wafer is cancelled on its own: its slot goes to the
	// queued one, which starts while the lot is paused and is paused in
	// turn.
	cancelled := running[1]
	if r := s.do(t, "DELETE", "/api/ion/runs/"+wafers()[cancelled]["run_id"].(string), op, nil); r.status != 202 {
		t.Fatalf("cancel %s = %d %s", cancelled, r.status, r.body)
	}
	waitWafers(later+" paused after it started", func(ws map[string]map[string]any) bool {
		if ws[later]["status"] == "completed" {
			t.Fatalf("%s completed while its lot was paused", later)
		}
		return ws[later]["status"] == "paused"
	})
	if r := s.do(t, "POST", "/api/lots/"+lotID+"/resume", op, nil); r.status != 202 {
		t.Fatalf("lot resume = %d %s", r.status, r.body)
	}
	lot := s.waitLot(t, op, lotID, 60*time.Second)
	for _, w := range lot["wafer_runs"].([]any) {
		w := w.(map[string]any)
		want := "completed"
		if w["wafer_id"] == cancelled {
			want = "cancelled"
		}
		if w["status"] != want {
			t.Errorf("wafer %v = %v, want %s", w["wafer_id"], w["status"], want)
		}
	}
}
