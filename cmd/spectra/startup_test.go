package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A start-up failure of serve exits 1, and its last line names the cause
// (no panic, no stack trace).
func TestServeStartFailureExitsWithOneLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown_event_store", []string{"--event-store", "bogus"}, `unknown event store "bogus"`},
		{"unreachable_nats", []string{"--nats", "nats://" + freePort(t)}, "connect to nats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", t.TempDir(), "--http", freePort(t)}, tt.args...)
			cmd := exec.Command(binPath, args...)
			cmd.Env = append(os.Environ(), "SPECTRA_JWT_SECRET="+testSecret)
			var stderr syncBuffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("spectra %s still running after 30s; stderr:\n%s", strings.Join(args, " "), stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("spectra %s: %v, want exit status 1; stderr:\n%s", strings.Join(args, " "), err, stderr.String())
			}
			out := strings.TrimSpace(stderr.String())
			lines := strings.Split(out, "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "spectra: serve: ") || !strings.Contains(last, tt.want) {
				t.Errorf("last line of stderr = %q, want \"spectra: serve: …%s…\"", last, tt.want)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Errorf("stderr holds a panic:\n%s", out)
			}
		})
	}
}
