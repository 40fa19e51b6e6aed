package main

import (
	"strings"
	"testing"
	"time"
)

// Two nodes share one NATS server (the first embeds it and listens, the
// second connects to it). Both activate the same unfinished run: exactly
// one actor keeps writing; the other is fenced by the expected revision and
// stops, saying so in its log.
func TestSecondNodeIsFencedOffARun(t *testing.T) {
	natsAddr := freePort(t)
	// The embedded NATS never listens without credentials: both nodes
	// share them (the second inherits the password from the environment).
	t.Setenv("SPECTRA_NATS_PASSWORD", "two-node-test-nats-password-0123456789")
	a := startServer(t, t.TempDir(), "--time-scale", "10", "--nats-listen", natsAddr, "--nats-user", "spectra", "--node", "node-a")
	eng := token(t, "engineer", "org-1")
	runID, jobID := a.create(t, "rtp", eng, rtpRecipe(t, nil))
	a.waitFor(t, "rtp", runID, eng, func(r map[string]any) bool { return r["progress"].(float64) > 22 })

	// The second node wakes every unfinished run when it starts.
	b := startServer(t, t.TempDir(), "--time-scale", "10", "--nats", "nats://"+natsAddr, "--nats-user", "spectra", "--node", "node-b")
	got := a.waitRun(t, "rtp", runID, eng, 60*time.Second)
	if got["status"] != "completed" {
		t.Fatalf("run = %v", got["status"])
	}
	lines := a.events(t, jobID, eng)
	checkRunLog(t, runID, lines)

	fencedA := strings.Contains(a.logs.String(), "run actor fenced")
	fencedB := strings.Contains(b.logs.String(), "run actor fenced")
	if fencedA == fencedB {
		t.Errorf("fenced on node a: %v, on node b: %v; want exactly one", fencedA, fencedB)
	}
}
