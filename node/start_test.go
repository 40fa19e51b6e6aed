package node_test

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/spectra-fab/spectra/node"
)

// A start-up failure returns one error naming its cause, after shutting
// down what Start had started: no goroutine of the embedded NATS server,
// the projection runner, the actors or a NATS client is left behind.
func TestStartFailureLeavesNothingRunning(t *testing.T) {
	closed := closedPort(t)
	tests := []struct {
		name string
		cfg  func(dir string) node.Config
		want string
	}{
		{"unknown_event_store", func(dir string) node.Config {
			return node.Config{DataDir: dir, EventStore: "bogus"}
		}, `unknown event store "bogus"`},
		{"unreachable_nats", func(dir string) node.Config {
			return node.Config{DataDir: dir, NATSURL: "nats://" + closed}
		}, "connect to nats nats://" + closed},
		{"missing_jwks_file_after_actors_started", func(dir string) node.Config {
			return node.Config{DataDir: dir, JWKSFile: filepath.Join(dir, "missing.json")}
		}, "missing.json"},
		{"nats_listen_address_taken", func(dir string) node.Config {
			return node.Config{DataDir: dir, NATSListen: "bogus-address"}
		}, "listen address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			n, err := node.Start(t.Context(), tt.cfg(t.TempDir()))
			if err == nil {
				n.Close()
				t.Fatalf("Start = nil error, want one containing %q", tt.want)
			}
			if n != nil {
				t.Errorf("Start returned a node with error %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Start error = %q, want one line containing %q", err, tt.want)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
