package node_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
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

// --nats-listen authorizes an NKey user too: its seed generated in the
// data directory (0600) unless --nats-nkey-seed names one. A client
// without credentials or signing with another key is refused.
func TestNATSListenAuthorizesTheNKey(t *testing.T) {
	dir := t.TempDir()
	n, err := node.Start(t.Context(), node.Config{DataDir: dir, NATSListen: "127.0.0.1:0", TimeScale: 0,
		JWTSecret: []byte("nats-nkey-test-secret-0123456789abcdef")})
	if err != nil {
		t.Fatalf("Start with --nats-listen: %v", err)
	}
	t.Cleanup(n.Close)
	url := n.NATSClientURL()
	seed := filepath.Join(dir, jetstream.NKeyFile)
	if fi, err := os.Stat(seed); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated nkey seed %s: %v, %v; want mode 0600", seed, fi, err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong.nk")
	if _, err := jetstream.LoadOrCreateNKey(wrong); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"another nkey": wrong, "": ""} {
		var opts []nats.Option
		if path != "" {
			o, err := nats.NkeyOptionFromSeed(path)
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, o)
		}
		if nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(0))...); err == nil {
			nc.Close()
			t.Errorf("nats.Connect with %q succeeded, want refused", name)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("nats.Connect with %q: %v, want an authorization violation", name, err)
		}
	}
	o, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, o)
	if err != nil {
		t.Fatalf("nats.Connect with the generated nkey: %v", err)
	}
	nc.Close()
}

// --nats with --nats-nkey-seed: the node signs in to an external NATS
// that takes NKeys only; without the seed it is refused and says so.
func TestExternalNATSWithNKey(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "node.nk")
	pub, err := jetstream.LoadOrCreateNKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	ext := startExternalNATSWith(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	secret := []byte("nats-nkey-ext-secret-0123456789abcdef")
	if n, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), NATSURL: ext.url(), TimeScale: 0, JWTSecret: secret}); err == nil {
		n.Close()
		t.Fatal("Start against an NKey-only NATS without --nats-nkey-seed succeeded")
	}
	n, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), NATSURL: ext.url(), NATSNKeySeed: seed, TimeScale: 0,
		JWTSecret: secret})
	if err != nil {
		t.Fatalf("Start with --nats-nkey-seed: %v", err)
	}
	n.Close()
}
