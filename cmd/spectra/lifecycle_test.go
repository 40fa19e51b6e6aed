package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// rtpRecipe is the seed's RTP recipe with extra fields.
func rtpRecipe(t testing.TB, extra map[string]any) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal(readExample(t, "rtp-seed.json"), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func (s *server) create(t testing.TB, kind, tok string, body any, hdr ...string) (runID, jobID string) {
	t.Helper()
	r := s.do(t, "POST", "/api/"+kind+"/runs", tok, body, hdr...)
	if r.status != 201 {
		t.Fatalf("POST /api/%s/runs = %d %s", kind, r.status, r.body)
	}
	m := r.json(t)
	return m["run_id"].(string), m["job_id"].(string)
}

// waitFor polls a run until cond holds.
func (s *server) waitFor(t testing.TB, kind, runID, tok string, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		if r := s.do(t, "GET", "/api/"+kind+"/runs/"+runID, tok, nil); r.status == 200 {
			last = r.json(t)
			if cond(last) {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("run %s: condition not met in time; last %v", runID, last)
	return nil
}

func TestCancelAndPause(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "10")
	eng := token(t, "engineer", "org-1")
	op := token(t, "operator", "org-1")

	// Cancel during the run: nothing is recorded after the cancel.
	runID, jobID := s.create(t, "rtp", eng, rtpRecipe(t, nil))
	s.waitFor(t, "rtp", runID, eng, func(r map[string]any) bool { return r["progress"].(float64) > 25 })
	if r := s.do(t, "DELETE", "/api/rtp/runs/"+runID, op, nil); r.status != 202 {
		t.Fatalf("DELETE run = %d %s", r.status, r.body)
	}
	got := s.waitRun(t, "rtp", runID, eng, 30*time.Second)
	if got["status"] != "cancelled" {
		t.Fatalf("after cancel status = %v", got["status"])
	}
	lines := s.events(t, jobID, eng)
	last := lines[len(lines)-1]
	if last.Type != "RunCancelled" {
		t.Fatalf("last event = %s, want RunCancelled", last.Type)
	}
	var cancelled struct {
		SafeState string `json:"safe_state"`
	}
	_ = json.Unmarshal(last.Data, &cancelled)
	if !strings.Contains(strings.ToLower(cancelled.SafeState), "lamp") {
		t.Errorf("safe state %q does not say what the lamps were left at", cancelled.SafeState)
	}
	seenRequest := false
	for _, l := range lines {
		if l.Type == "RunCancelRequested" {
			seenRequest = true
		}
		if seenRequest && l.Type == "TelemetryRecorded" {
			t.Errorf("telemetry recorded after the cancel request (revision %d)", l.Revision)
		}
	}
	if r := s.do(t, "POST", "/api/jobs/"+jobID+"/cancel", op, nil); r.status != 409 {
		t.Errorf("cancel of a cancelled job = %d %s, want 409", r.status, r.body)
	}
	if r := s.do(t, "POST", "/api/jobs/job-000000000000/cancel", op, nil); r.status != 404 {
		t.Errorf("cancel of an unknown job = %d, want 404", r.status)
	}

	// Pause: no progress while paused; resume: completes.
	runID, jobID = s.create(t, "rtp", eng, rtpRecipe(t, nil))
	s.waitFor(t, "rtp", runID, eng, func(r map[string]any) bool { return r["progress"].(float64) > 22 })
	if r := s.do(t, "POST", "/api/jobs/"+jobID+"/retry", eng, nil); r.status != 409 {
		t.Errorf("retry of a running job = %d, want 409", r.status)
	}
	if r := s.do(t, "POST", "/api/jobs/"+jobID+"/pause", op, nil); r.status != 202 {
		t.Fatalf("pause = %d %s", r.status, r.body)
	}
	if r := s.do(t, "POST", "/api/jobs/"+jobID+"/retry", eng, nil); r.status != 409 {
		t.Errorf("retry of a paused job = %d, want 409", r.status)
	}
	paused := s.waitFor(t, "rtp", runID, eng, func(r map[string]any) bool { return r["status"] == "paused" })
	time.Sleep(800 * time.Millisecond) // 8 s of process time at scale 10
	still := s.do(t, "GET", "/api/rtp/runs/"+runID, eng, nil).json(t)
	if still["status"] != "paused" || still["progress"] != paused["progress"] || still["process_time_s"] != paused["process_time_s"] {
		t.Errorf("while paused: %v/%v/%v → %v/%v/%v", paused["status"], paused["progress"], paused["process_time_s"],
			still["status"], still["progress"], still["process_time_s"])
	}
	if r := s.do(t, "POST", "/api/jobs/"+jobID+"/resume", op, nil); r.status != 202 {
		t.Fatalf("resume = %d %s", r.status, r.body)
	}
	if got := s.waitRun(t, "rtp", runID, eng, 60*time.Second); got["status"] != "completed" {
		t.Fatalf("after resume status = %v", got["status"])
	}
	if r := s.do(t, "POST", "/api/jobs/"+jobID+"/cancel", op, nil); r.status != 409 {
		t.Errorf("cancel of a completed job = %d, want 409", r.status)
	}

	// Logs and artifacts of a finished run.
	logs := s.do(t, "GET", "/api/jobs/"+jobID+"/logs", eng, nil)
	if logs.status != 200 || !strings.Contains(logs.header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(logs.body), "RunCompleted") || !strings.Contains(string(logs.body), "RunPaused") {
		t.Errorf("text logs = %d %s\n%s", logs.status, logs.header.Get("Content-Type"), tail(string(logs.body), 500))
	}
	job := s.do(t, "GET", "/api/jobs/"+jobID, eng, nil).json(t)
	arts, _ := job["artifacts"].([]any)
	if len(arts) == 0 {
		t.Fatalf("job has no artifacts: %v", job)
	}
	for _, a := range arts {
		art := a.(map[string]any)
		r := s.do(t, "GET", art["uri"].(string), eng, nil)
		if r.status != 200 || len(r.body) != int(art["size"].(float64)) || r.header.Get("Content-Type") != art["content_type"] {
			t.Errorf("download %s = %d, %d bytes (want %v), %s", art["uri"], r.status, len(r.body), art["size"], r.header.Get("Content-Type"))
		}
	}
	if r := s.do(t, "GET", "/api/jobs/"+jobID+"/artifacts/nope.json", eng, nil); r.status != 404 {
		t.Errorf("unknown artifact = %d, want 404", r.status)
	}
}

func TestFaultsRetriesAndIdempotency(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0", "--allow-fault-injection", "--retry-base", "1s")
	eng := token(t, "engineer", "org-1")

	runID, _ := s.create(t, "rtp", eng, rtpRecipe(t, map[string]any{
		"simulate_fault": map[string]any{"kind": "transient", "at_progress_pct": 40}}))
	got := s.waitRun(t, "rtp", runID, eng, 60*time.Second)
	if got["status"] != "completed" || got["retry_count"].(float64) < 1 {
		t.Errorf("transient fault: status %v, retry_count %v; want completed after ≥ 1 retry", got["status"], got["retry_count"])
	}

	runID, jobID := s.create(t, "rtp", eng, rtpRecipe(t, map[string]any{
		"simulate_fault": map[string]any{"kind": "permanent", "at_progress_pct": 40}}))
	got = s.waitRun(t, "rtp", runID, eng, 60*time.Second)
	if got["status"] != "failed" || got["error_message"] == "" || got["error_message"] == nil {
		t.Fatalf("permanent fault: %v / %v", got["status"], got["error_message"])
	}
	r := s.do(t, "POST", "/api/jobs/"+jobID+"/retry", eng, nil)
	if r.status != 202 {
		t.Fatalf("retry = %d %s", r.status, r.body)
	}
	newJob := r.json(t)["job_id"].(string)
	if newJob == jobID {
		t.Fatalf("retry kept job id %s", jobID)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		j := s.do(t, "GET", "/api/jobs/"+newJob, eng, nil)
		if j.status == 200 && j.json(t)["status"] == "completed" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if j := s.do(t, "GET", "/api/jobs/"+newJob, eng, nil).json(t); j["status"] != "completed" {
		t.Errorf("retried job = %v", j["status"])
	}
	if old := s.do(t, "GET", "/api/jobs/"+jobID, eng, nil).json(t); old["status"] != "failed" {
		t.Errorf("the original job = %v, want failed", old["status"])
	}

	// Fault injection is refused unless the server allows it.
	plain := startServer(t, t.TempDir(), "--time-scale", "0")
	if r := plain.do(t, "POST", "/api/rtp/runs", eng, rtpRecipe(t, map[string]any{
		"simulate_fault": map[string]any{"kind": "transient", "at_progress_pct": 40}})); r.status != 422 {
		t.Errorf("simulate_fault on a server without fault injection = %d, want 422", r.status)
	}

	// The same Idempotency-Key twice → one run.
	a, _ := s.create(t, "rtp", eng, rtpRecipe(t, nil), "Idempotency-Key", "key-42")
	b := s.do(t, "POST", "/api/rtp/runs", eng, rtpRecipe(t, nil), "Idempotency-Key", "key-42")
	if b.status/100 != 2 || b.json(t)["run_id"] != a {
		t.Errorf("second create with the same key = %d %s, want run %s", b.status, b.body, a)
	}
}

func TestQueueLimitFromTheLog(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "50", "--queue-limit", "2")
	eng := token(t, "engineer", "org-1")
	var jobs []string
	var runs []string
	for range 5 {
		r, j := s.create(t, "rtp", eng, rtpRecipe(t, nil))
		runs, jobs = append(runs, r), append(jobs, j)
	}
	type edge struct {
		pos   uint64
		delta int
	}
	var edges []edge
	for i, id := range runs {
		s.waitRun(t, "rtp", id, eng, 90*time.Second)
		for _, l := range s.events(t, jobs[i], eng) {
			switch l.Type {
			case "RunStarted":
				edges = append(edges, edge{l.Position, +1})
			case "RunCompleted", "RunFailed", "RunCancelled":
				edges = append(edges, edge{l.Position, -1})
			}
		}
	}
	// Order by global position and count runs between start and end.
	for i := range edges {
		for j := i + 1; j < len(edges); j++ {
			if edges[j].pos < edges[i].pos {
				edges[i], edges[j] = edges[j], edges[i]
			}
		}
	}
	running, peak := 0, 0
	for _, e := range edges {
		running += e.delta
		peak = max(peak, running)
	}
	if peak > 2 || peak < 1 {
		t.Errorf("peak running from the log = %d, want at most 2", peak)
	}
}

// A beam-current drift injected into the simulator is caught by the
// CUSUM fault detection and recorded as an FDCAlarm; the same recipe
// without the drift raises none.
func TestInjectedBeamDriftRaisesFDCAlarm(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0", "--allow-fault-injection")
	eng := token(t, "engineer", "org-1")
	ion := map[string]any{}
	if err := json.Unmarshal(readExample(t, "ion-seed.json"), &ion); err != nil {
		t.Fatal(err)
	}
	ion["dose_atoms_cm2"] = 4e15 // a longer implant, ≈90 s
	stable, stableJob := s.create(t, "ion", eng, ion)
	ion["simulate_disturbance"] = map[string]any{"offset_pct": 0, "drift_pct_per_min": -3, "start_s": 10}
	drift, driftJob := s.create(t, "ion", eng, ion)

	count := func(runID, jobID string) int {
		s.waitRun(t, "ion", runID, eng, 60*time.Second)
		n := 0
		for _, l := range s.events(t, jobID, eng) {
			if l.Type == "FDCAlarm" {
				n++
			}
		}
		return n
	}
	if n := count(drift, driftJob); n == 0 {
		t.Errorf("drifting beam raised no FDC alarm")
	}
	if n := count(stable, stableJob); n != 0 {
		t.Errorf("stable beam raised %d FDC alarms", n)
	}
}

// Artifacts expire after the configured retention; the events that name
// them stay.
func TestArtifactsExpireEventsStay(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0", "--artifact-ttl", "2s")
	eng := token(t, "engineer", "org-1")
	runID, jobID := s.create(t, "ion", eng, readExample(t, "ion-seed.json"))
	s.waitRun(t, "ion", runID, eng, 60*time.Second)
	uri := "/api/jobs/" + jobID + "/artifacts/telemetry.json"
	if r := s.do(t, "GET", uri, eng, nil); r.status != 200 {
		t.Fatalf("fresh artifact = %d", r.status)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.do(t, "GET", uri, eng, nil)
		if r.status == 404 {
			if !strings.Contains(string(r.body), "expired") {
				t.Errorf("expired artifact answer %s does not say it expired", r.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("artifact still served 30 s after a 2 s retention: %d", r.status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stored := 0
	for _, l := range s.events(t, jobID, eng) {
		if l.Type == "ArtifactStored" {
			stored++
		}
	}
	if stored == 0 {
		t.Errorf("the ArtifactStored events are gone with the files")
	}
}

// spectra audit prints, for a run, who created and cancelled it.
func TestAuditCommand(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "1")
	eng := token(t, "engineer", "org-1")
	runID, _ := s.create(t, "rtp", eng, rtpRecipe(t, nil))
	if r := s.do(t, "DELETE", "/api/rtp/runs/"+runID, token(t, "operator", "org-1"), nil); r.status != 202 {
		t.Fatalf("cancel = %d %s", r.status, r.body)
	}
	s.waitRun(t, "rtp", runID, eng, 30*time.Second)
	cmd := exec.Command(binPath, "audit", "--run-id", runID, "--server", "http://"+s.addr, "--token", token(t, "admin", "org-1"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("spectra audit: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"engineer-user", "operator-user", runID} {
		if !strings.Contains(text, want) {
			t.Errorf("spectra audit output lacks %q:\n%s", want, text)
		}
	}
}
