package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromium returns the path of a headless-capable Chromium. .ci/run and
// `make browser` install Debian's chromium; where it is missing the browser
// test skips, saying so loudly, rather than failing the whole suite on a
// machine that cannot install it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("BROWSER TEST SKIPPED: no Chromium on this machine (`make browser` or .ci/run installs Debian's chromium)")
	return ""
}

// A real headless browser loads the dashboard with a viewer's token,
// renders the organisation's runs read through the API, follows the
// organisation's WebSocket stream, and replays one run's stream into its
// detail panel.
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
	url := "http://" + s.addr + "/#token=" + viewer + "&run=" + runID
	checks := []struct{ name, want string }{
		{"the run", runID},
		{"the run completed", `class="status-completed">completed<`},
		{"the E40 state", "PROCESS COMPLETE"},
		{"a live organisation stream", `id="conn" class="pill on">live<`},
		{"the run's results, replayed from its own stream", "final_dose_atoms_cm2"},
	}
	// Headless Chromium's virtual time does not wait for WebSocket
	// messages, so a dump may come early: the page gets a few loads.
	var dom string
	var missing []string
	for attempt := 0; attempt < 5; attempt++ {
		dom = dumpDOM(t, browser, url)
		missing = missing[:0]
		for _, c := range checks {
			if !strings.Contains(dom, c.want) {
				missing = append(missing, c.name)
			}
		}
		if len(missing) == 0 {
			return
		}
	}
	t.Fatalf("the dashboard does not show %s:\n%s", strings.Join(missing, ", "), tail(dom, 3000))
}

func dumpDOM(t *testing.T, browser, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}
