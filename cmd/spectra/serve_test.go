package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A malformed SPECTRA_* value stops serve with the variable's name, before
// anything starts.
func TestServeRefusesMalformedEnv(t *testing.T) {
	for _, v := range []string{"SPECTRA_TIME_SCALE=abc", "SPECTRA_QUEUE_LIMIT=-x", "SPECTRA_LOG_LEVEL=loud"} {
		cmd := exec.Command(binPath, "serve", "--http", freePort(t), "--data-dir", t.TempDir())
		cmd.Env = append(os.Environ(), "SPECTRA_JWT_SECRET="+testSecret, v)
		out, err := cmd.CombinedOutput()
		name, _, _ := strings.Cut(v, "=")
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), name) {
			t.Errorf("serve with %s: err %v, output %q; want exit 1 naming %s", v, err, out, name)
		}
	}
}

// serve --dev logs text, not NATS's banner, and ends its start-up with what
// a developer needs: the dashboard, a sign-in link, the secret, the token.
func TestServeDevOutput(t *testing.T) {
	addr := freePort(t)
	cmd := exec.Command(binPath, "serve", "--dev", "--http", addr, "--data-dir", t.TempDir(), "--time-scale", "0")
	cmd.Env = append(os.Environ(), "SPECTRA_JWT_SECRET=")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "export SPECTRA_TOKEN=") {
		select {
		case <-exited:
			t.Fatalf("serve --dev exited:\n%s", out.String())
		case <-deadline:
			t.Fatalf("serve --dev printed no token in 60 s:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(100 * time.Millisecond) // the rest of the banner
	text := out.String()
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	last := strings.Join(lines[max(0, len(lines)-6):], "\n")
	_, port, _ := strings.Cut(addr, ":")
	for _, want := range []string{"Dashboard: http://127.0.0.1:" + port + "/", "Sign in:   http://127.0.0.1:" + port + "/#token=ey",
		"export SPECTRA_JWT_SECRET=", "export SPECTRA_TOKEN=ey"} {
		if !strings.Contains(last, want) {
			t.Errorf("last lines of serve --dev lack %q:\n%s", want, last)
		}
	}
	if strings.Contains(text, "nats-server") || strings.Contains(text, "component=nats") {
		t.Errorf("serve --dev shows NATS's start-up notices:\n%s", text)
	}
	if !strings.Contains(text, "level=INFO msg=\"spectra serving\"") {
		t.Errorf("serve --dev does not log text:\n%s", text)
	}
	if strings.Contains(text, `{"time":`) {
		t.Errorf("serve --dev logs JSON:\n%s", text)
	}
}
