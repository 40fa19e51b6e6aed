package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromium returns the path of a headless-capable Chromium, or skips: the
// browser test is one that -short may skip, and .ci/run installs Chromium.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if testing.Short() {
		t.Skip("no Chromium on this machine (browser test skipped with -short)")
	}
	t.Fatal("no Chromium on this machine: .ci/run installs Debian's chromium package")
	return ""
}

// A real headless browser loads the dashboard with a viewer's token and
// renders the organisation's runs, read through the API.
func TestDashboardInHeadlessChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	browser := chromium(t)
	s := startServer(t, t.TempDir(), "--time-scale", "0")
	eng := token(t, "engineer", "org-1")
	runID, _ := s.create(t, "ion", eng, readExample(t, "ion-seed.json"))
	s.waitRun(t, "ion", runID, eng, 60*time.Second)

	viewer := token(t, "viewer", "org-1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom",
		"http://"+s.addr+"/#token="+viewer)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	if !strings.Contains(dom, runID) {
		t.Fatalf("the dashboard does not show run %s:\n%s", runID, tail(dom, 3000))
	}
	if !strings.Contains(dom, `class="status-completed">completed<`) {
		t.Errorf("the dashboard does not show the run completed:\n%s", tail(dom, 3000))
	}
	if !strings.Contains(dom, "PROCESS COMPLETE") {
		t.Errorf("the dashboard does not show the E40 state")
	}
}
