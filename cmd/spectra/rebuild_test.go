package main

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events/kurrent/kurrenttest"
)

// rebuild runs `spectra projections rebuild` on a stopped node's data.
func rebuild(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"projections", "rebuild"}, args...)...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("projections rebuild: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`rebuilt jobstatus up to position \d+`).Match(out) {
		t.Fatalf("projections rebuild said: %s", out)
	}
	return string(out)
}

func TestProjectionsRebuildOnJetStream(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--time-scale", "0")
	eng := token(t, "engineer", "org-1")
	runID, _ := s.create(t, "ion", eng, readExample(t, "ion-seed.json"))
	s.waitRun(t, "ion", runID, eng, 60*time.Second)
	before := s.do(t, "GET", "/api/ion/runs/"+runID, eng, nil).json(t)
	s.stop()

	rebuild(t, "--data-dir", dir)
	s.start()
	after := s.do(t, "GET", "/api/ion/runs/"+runID, eng, nil).json(t)
	for _, k := range []string{"status", "final_dose_atoms_cm2", "revision", "spc_alerts_count", "started_at", "completed_at"} {
		if before[k] != after[k] {
			t.Errorf("after rebuild %s = %v, before %v", k, after[k], before[k])
		}
	}
	cmd := exec.Command(binPath, "projections", "rebuild", "nope", "--data-dir", dir)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("rebuild of an unknown projection succeeded: %s", out)
	}
}

// The binary with its event log on KurrentDB (the protocol double over
// loopback gRPC, with the real client): runs, stops, rebuilds from the log
// and restarts.
func TestServeAndRebuildOnKurrentDB(t *testing.T) {
	_, conn := kurrenttest.Start(t)
	dir := t.TempDir()
	s := startServer(t, dir, "--time-scale", "0", "--event-store", conn)
	eng := token(t, "engineer", "org-1")
	runID, jobID := s.create(t, "ion", eng, readExample(t, "ion-seed.json"))
	if got := s.waitRun(t, "ion", runID, eng, 60*time.Second); got["status"] != "completed" {
		t.Fatalf("run on KurrentDB = %v", got["status"])
	}
	checkRunLog(t, runID, s.events(t, jobID, eng))
	s.stop()
	rebuild(t, "--data-dir", dir, "--event-store", conn)
	s.start()
	if got := s.do(t, "GET", "/api/ion/runs/"+runID, eng, nil).json(t); got["status"] != "completed" {
		t.Errorf("after rebuild and restart: %v", got["status"])
	}
}
