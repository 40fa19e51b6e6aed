package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchCommand runs `spectra bench` against a server: it creates the
// runs, sees each end on the organisation stream and prints its figures,
// fsyncs included (the server syncs by default).
func TestBenchCommand(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0", "--queue-limit", "10")
	cmd := exec.Command(binPath, "bench", "--server", "http://"+s.addr, "--runs", "4", "--clients", "2",
		"--recipe", filepath.Join("..", "..", "examples", "ion-seed.json"))
	cmd.Env = append(os.Environ(), "SPECTRA_JWT_SECRET="+testSecret, "SPECTRA_TOKEN=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("spectra bench: %v\n%s", err, out)
	}
	for _, want := range []string{"runs: 4 created, 4 ended map[completed:4], 0 create errors", "runs/s:", "run latency", "events/s:", "fsyncs/s: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "fsyncs/s: unknown") {
		t.Errorf("fsyncs unknown with sync on:\n%s", out)
	}
}
