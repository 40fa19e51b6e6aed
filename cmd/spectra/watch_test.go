package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// These tests run `spectra submit --watch` and `spectra replay` as
// processes against a real server: they follow runs over its WebSocket
// streams.

func writeRecipe(t *testing.T, m map[string]any) string {
	t.Helper()
	data, _ := json.Marshal(m)
	path := filepath.Join(t.TempDir(), "recipe.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cli runs the spectra binary against s and returns its stdout, stderr
// and exit code.
func (s *server) cli(t *testing.T, tok string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "SPECTRA_SERVER=http://"+s.addr, "SPECTRA_TOKEN="+tok)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("spectra %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func TestSubmitWatchAndReplay(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "50", "--allow-fault-injection")
	eng := token(t, "engineer", "org-1")

	out, errs, code := s.cli(t, eng, "submit", "rtp", writeRecipe(t, rtpRecipe(t, nil)), "--watch")
	if code != 0 {
		t.Fatalf("submit --watch exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	t.Logf("submit --watch:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	runID, _, _ := strings.Cut(lines[0], " ")
	if !strings.HasPrefix(runID, "RTP-") {
		t.Fatalf("first line %q does not name the run", lines[0])
	}
	if !strings.Contains(out, "[####################] 100.0% completed") || !strings.Contains(out, "\ncompleted: "+runID) {
		t.Errorf("submit --watch output lacks the full bar or the end:\n%s", out)
	}
	// The results table: name, value to four significant digits, unit.
	if !regexp.MustCompile(`(?m)^RESULT +VALUE +UNIT$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^final_temp_c +-?\d+(\.\d{1,3})? +°C$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^vm_prediction\.junction_depth_um +0\.\d{1,4} +µm$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^artifacts: .*temperature_profile\.svg`).MatchString(out) {
		t.Errorf("submit --watch output lacks the results table:\n%s", out)
	}
	if steps := strings.Count(out, "running"); steps < 3 {
		t.Errorf("submit --watch printed %d progress lines while running, want several:\n%s", steps, out)
	}

	// replay prints every event of the run, then "caught up".
	out, errs, code = s.cli(t, eng, "replay", runID)
	if code != 0 {
		t.Fatalf("replay exited %d: %s", code, errs)
	}
	t.Logf("replay:\n%s", out)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	run := s.do(t, "GET", "/api/rtp/runs/"+runID, eng, nil).json(t)
	nEvents := len(s.events(t, run["job_id"].(string), eng))
	if len(lines) != nEvents+1 || !strings.HasSuffix(lines[len(lines)-1], "caught up") {
		t.Errorf("replay printed %d lines, want %d events and caught up:\n%s", len(lines), nEvents, out)
	}
	if !strings.Contains(lines[0], "[0]    progress  RunRequested") || !strings.Contains(out, "completed RunCompleted") {
		t.Errorf("replay lines:\n%s", out)
	}

	// replay --json --from prints the stream's messages.
	out, _, code = s.cli(t, eng, "replay", runID, "--json", "--from", "5")
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<22)
	var types []string
	for sc.Scan() {
		var m struct {
			Type     string  `json:"type"`
			Revision *uint64 `json:"revision"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("replay --json line %q: %v", sc.Text(), err)
		}
		if len(types) == 1 && (m.Revision == nil || *m.Revision != 5) {
			t.Errorf("first event of --from 5 has revision %v", m.Revision)
		}
		types = append(types, m.Type)
	}
	if code != 0 || len(types) != nEvents-5+2 || types[0] != "connected" || types[len(types)-1] != "caught_up" {
		t.Errorf("replay --json --from 5: exit %d, %d messages (%v…), want connected, %d events, caught_up",
			code, len(types), types[:min(3, len(types))], nEvents-5)
	}

	// A run that fails: the watch says so and exits 1.
	fail := rtpRecipe(t, map[string]any{"simulate_fault": map[string]any{"kind": "permanent", "at_progress_pct": 40}})
	out, errs, code = s.cli(t, eng, "submit", "rtp", writeRecipe(t, fail), "--watch")
	if code != 1 || !strings.Contains(errs, "run failed: ") {
		t.Errorf("failing run: exit %d, stderr %q; want 1 and the error\nstdout:\n%s", code, errs, out)
	}

	// Another organisation's run is not found, as over REST.
	_, errs, code = s.cli(t, token(t, "admin", "org-2"), "replay", runID)
	if code != 1 || !strings.Contains(errs, "404 not_found") {
		t.Errorf("replay of another organisation's run: exit %d, stderr %q; want 1 and 404", code, errs)
	}
}

func TestWatchCancelled(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "5")
	eng := token(t, "engineer", "org-1")
	cmd := exec.Command(binPath, "submit", "rtp", writeRecipe(t, rtpRecipe(t, nil)), "--watch")
	cmd.Env = append(os.Environ(), "SPECTRA_SERVER=http://"+s.addr, "SPECTRA_TOKEN="+eng)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	rd := bufio.NewReader(stdout)
	first, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("read the run id: %v", err)
	}
	runID, _, _ := strings.Cut(first, " ")
	s.waitFor(t, "rtp", runID, eng, func(r map[string]any) bool { return r["status"] == "running" })
	if r := s.do(t, "DELETE", "/api/rtp/runs/"+runID, eng, nil); r.status != 202 {
		t.Fatalf("cancel = %d %s", r.status, r.body)
	}
	rest, _ := bufio.NewReader(rd).ReadString(0)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "run cancelled") {
		t.Errorf("watch of a cancelled run: %v, stderr %q; want exit 1 saying so\nstdout:\n%s%s", err, errb.String(), first, rest)
	}
}

// TestWatchResumesAcrossRestart: the server stops mid-run (1001) and
// starts again; the watch resumes from the revision after the last it got
// and sees the run through.
func TestWatchResumesAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	s := startServer(t, t.TempDir(), "--time-scale", "10")
	eng := token(t, "engineer", "org-1")
	cmd := exec.Command(binPath, "submit", "rtp", writeRecipe(t, rtpRecipe(t, nil)), "--watch")
	cmd.Env = append(os.Environ(), "SPECTRA_SERVER=http://"+s.addr, "SPECTRA_TOKEN="+eng)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "running") {
		if time.Now().After(deadline) {
			t.Fatalf("watch shows no running run:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	s.start()
	err := cmd.Wait()
	if err != nil || !strings.Contains(out.String(), "completed: ") || !strings.Contains(errb.String(), "resuming from revision") {
		t.Errorf("watch across a restart: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
}
