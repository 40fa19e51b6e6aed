package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The job commands, the run list and the job log, as a person uses them
// from a shell against a real server: pause, resume and cancel a run by
// its id, see it in `spectra runs` by state, read why in `spectra logs`,
// then retry it and get its results as JSON.
func TestCLIRunsLogsAndJobCommands(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "2")
	eng := token(t, "engineer", "org-1")

	out, errs, code := s.cli(t, eng, "submit", "rtp", writeRecipe(t, rtpRecipe(t, nil)), "--json")
	var created struct {
		RunID string `json:"run_id"`
		JobID string `json:"job_id"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created.RunID == "" {
		t.Fatalf("submit --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	run := func(args ...string) string {
		t.Helper()
		out, errs, code := s.cli(t, eng, args...)
		if code != 0 {
			t.Fatalf("spectra %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	waitState := func(state string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := run("runs", "--state", state, "--kind", "rtp")
			if strings.Contains(out, created.RunID) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("spectra runs --state %s never listed %s:\n%s", state, created.RunID, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitState("running")
	run("pause", created.RunID)
	out = waitState("paused")
	if !regexp.MustCompile(`(?m)^RUN +JOB +STATE +PROGRESS`).MatchString(out) ||
		!regexp.MustCompile(created.RunID+` +`+created.JobID+` +paused +\d+%`).MatchString(out) {
		t.Errorf("spectra runs --state paused:\n%s", out)
	}
	if out := run("runs", "--state", "running"); strings.Contains(out, created.RunID) {
		t.Errorf("spectra runs --state running lists the paused run:\n%s", out)
	}
	if out := run("runs", "--kind", "ion"); strings.Contains(out, created.RunID) {
		t.Errorf("spectra runs --kind ion lists an RTP run:\n%s", out)
	}
	run("resume", created.JobID) // by job id too
	waitState("running")
	run("cancel", created.RunID, "--reason", "wrong lot")
	waitState("cancelled")

	logs := run("logs", created.JobID)
	for _, want := range []string{"RunPaused", "RunResumed", "RunCancelled", "wrong lot"} {
		if !strings.Contains(logs, want) {
			t.Errorf("spectra logs lacks %q:\n%s", want, logs)
		}
	}
	var last map[string]any
	lines := strings.Split(strings.TrimSpace(run("logs", created.RunID, "--json")), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["type"] != "RunCancelled" {
		t.Errorf("spectra logs --json: last line %q (%v), want a RunCancelled object", lines[len(lines)-1], err)
	}

	// A command the run's state refuses is the API's 409, exit 1.
	if _, errs, code := s.cli(t, eng, "pause", created.RunID); code != 1 || !strings.Contains(errs, "409") {
		t.Errorf("pause of a cancelled run: exit %d, stderr %q; want 1 and the 409", code, errs)
	}
	run("retry", created.RunID)
	waitState("running")
	// A viewer may list but not cancel.
	if _, errs, code := s.cli(t, token(t, "viewer", "org-1"), "cancel", created.RunID); code != 1 || !strings.Contains(errs, "403") {
		t.Errorf("viewer cancel: exit %d, stderr %q; want 1 and a 403", code, errs)
	}
}

// submit --watch --json prints the finished run's JSON and nothing else.
func TestSubmitWatchJSON(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0")
	recipe := filepath.Join(t.TempDir(), "ion.json")
	if err := os.WriteFile(recipe, readExample(t, "ion-seed.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := s.cli(t, token(t, "engineer", "org-1"), "submit", "ion", recipe, "--watch", "--json")
	var run map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &run) != nil {
		t.Fatalf("submit --watch --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if run["status"] != "completed" || run["final_dose_atoms_cm2"] == nil {
		t.Errorf("submit --watch --json = %v, want the completed run with its results", run)
	}
}

// Every documented result has the unit docs/results.md gives it.
func TestResultUnitsMatchDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/results.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (`[^|]+) \\| ([^|]+) \\|")
	n := 0
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		unit := strings.TrimSpace(m[2])
		if unit == "—" {
			unit = ""
		}
		for _, f := range regexp.MustCompile("`([a-z0-9_.]+)`").FindAllStringSubmatch(m[1], -1) {
			n++
			if got := unitOf(f[1]); got != unit {
				t.Errorf("unitOf(%q) = %q, want %q (docs/results.md)", f[1], got, unit)
			}
		}
	}
	if n < 20 {
		t.Fatalf("found %d documented results in docs/results.md; the table format changed?", n)
	}
}

func TestRound(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{84.83464531358337, "84.83"}, {0.16566896569511472, "0.1657"}, {1.0000552173401521e15, "1.000e+15"},
		{2.533e-06, "2.533e-06"}, {49.1, "49.1"}, {7, "7"}, {-0.29421, "-0.2942"}, {1000, "1000"}, {0, "0"},
	} {
		if got := round(tc.in); got != tc.want {
			t.Errorf("round(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The completion scripts are valid shell and offer every command.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		out, err := exec.Command(binPath, "completion", sh).Output()
		if err != nil {
			t.Fatalf("spectra completion %s: %v", sh, err)
		}
		for _, c := range commands {
			if !strings.Contains(string(out), c) {
				t.Errorf("completion %s lacks %q", sh, c)
			}
		}
		if path, err := exec.LookPath(sh); err == nil {
			if out, err := exec.Command(path, "-n", "-c", string(out)).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", sh, err, out)
			}
		}
	}
}
