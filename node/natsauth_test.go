package node_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/spectra-fab/spectra/events/jetstream"
	"github.com/spectra-fab/spectra/node"
)

// --nats-listen without credentials given: the node generates them in its
// data directory, uses them itself, and refuses a client without them.
func TestNATSListenRefusesClientsWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	n, err := node.Start(t.Context(), node.Config{DataDir: dir, NATSListen: "127.0.0.1:0", TimeScale: 0,
		JWTSecret: []byte("nats-auth-test-secret-0123456789abcdef")})
	if err != nil {
		t.Fatalf("Start with --nats-listen: %v", err)
	}
	t.Cleanup(n.Close)
	url := n.NATSClientURL()
	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatalf("nats.Connect(%s) without credentials succeeded, want refused", url)
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("nats.Connect without credentials: %v, want an authorization violation", err)
	}
	creds, err := jetstream.LoadOrCreateCredentials(filepath.Join(dir, jetstream.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.UserInfo(creds.User, creds.Password))
	if err != nil {
		t.Fatalf("nats.Connect with the generated credentials: %v", err)
	}
	nc.Close()
}
