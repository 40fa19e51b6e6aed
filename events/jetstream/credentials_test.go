package jetstream_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spectra-fab/spectra/events/jetstream"
)

// A listening embedded server refuses clients without its credentials; it
// generates them in the data directory (0600) and keeps them across
// restarts; in-process clients get them from Connect.
func TestListeningServerRequiresCredentials(t *testing.T) {
	dir := t.TempDir()
	srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: dir, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		srv.Shutdown()
		t.Fatalf("nats.Connect(%s) without credentials succeeded, want it refused", url)
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("nats.Connect without credentials: %v, want an authorization violation", err)
	}
	if nc, err := nats.Connect(url, nats.UserInfo("spectra", "guess-guess-guess-guess")); err == nil {
		nc.Close()
		t.Errorf("nats.Connect with a wrong password succeeded")
	}
	creds := srv.Credentials()
	nc, err := nats.Connect(url, nats.UserInfo(creds.User, creds.Password))
	if err != nil {
		t.Fatalf("nats.Connect with the server's credentials: %v", err)
	}
	nc.Close()
	in, err := srv.Connect()
	if err != nil {
		t.Fatalf("in-process Connect: %v", err)
	}
	in.Close()
	srv.Shutdown()

	path := filepath.Join(dir, jetstream.CredentialsFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("credentials file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode = %v, want 0600", fi.Mode().Perm())
	}
	again, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: dir, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Shutdown()
	if again.Credentials() != creds {
		t.Errorf("credentials after a restart differ from the first ones")
	}
}

// With a certificate the listener speaks TLS only; in-process clients are
// unaffected.
func TestListeningServerWithTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	creds := jetstream.Credentials{User: "ops", Password: "a-long-enough-password"}
	srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: dir, ListenAddr: "127.0.0.1:0",
		Credentials: creds, TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	addr := strings.TrimPrefix(srv.ClientURL(), "tls://")
	if nc, err := nats.Connect("nats://"+addr, nats.UserInfo(creds.User, creds.Password), nats.MaxReconnects(0),
		nats.Secure(&tls.Config{InsecureSkipVerify: false, RootCAs: x509.NewCertPool()})); err == nil {
		nc.Close()
		t.Errorf("TLS connect trusting no CA succeeded")
	}
	nc, err := nats.Connect("tls://"+addr, nats.UserInfo(creds.User, creds.Password),
		nats.Secure(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}))
	if err != nil {
		t.Fatalf("TLS connect with credentials: %v", err)
	}
	nc.Close()
	in, err := srv.Connect()
	if err != nil {
		t.Fatalf("in-process Connect: %v", err)
	}
	in.Close()
}

// A weak password is refused rather than served.
func TestListeningServerRefusesAWeakPassword(t *testing.T) {
	_, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0",
		Credentials: jetstream.Credentials{User: "u", Password: "short"}})
	if err == nil {
		t.Fatal("StartServer with a 5-character password succeeded")
	}
}

// A listening server authorizes an NKey user besides its password: one
// generated in the data directory (0600) unless a seed file is given. A
// client without credentials, or signing with another key, is refused;
// one with the key gets JetStream.
func TestListeningServerRequiresTheNKey(t *testing.T) {
	dir := t.TempDir()
	srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: dir, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	seed := srv.NKeySeedFile()
	if seed != filepath.Join(dir, jetstream.NKeyFile) {
		t.Errorf("NKeySeedFile = %q, want the generated one in the data directory", seed)
	}
	if fi, err := os.Stat(seed); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("nkey seed file: %v, %v; want mode 0600", fi, err)
	}
	url := srv.ClientURL()
	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Errorf("nats.Connect without credentials succeeded, want it refused")
	}
	wrong := filepath.Join(t.TempDir(), "other.nk")
	if _, err := jetstream.LoadOrCreateNKey(wrong); err != nil {
		t.Fatal(err)
	}
	wrongOpt, err := nats.NkeyOptionFromSeed(wrong)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(url, wrongOpt, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Errorf("nats.Connect with another nkey succeeded, want it refused")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("nats.Connect with another nkey: %v, want an authorization violation", err)
	}
	opt, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opt)
	if err != nil {
		t.Fatalf("nats.Connect with the server's nkey: %v", err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Errorf("JetStream for the nkey user: %v", err)
	}

	// A seed file given is the key authorized (and a restart keeps it).
	given := filepath.Join(t.TempDir(), "ops.nk")
	if _, err := jetstream.LoadOrCreateNKey(given); err != nil {
		t.Fatal(err)
	}
	srv2, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0", NKeySeedFile: given})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Shutdown()
	givenOpt, _ := nats.NkeyOptionFromSeed(given)
	if nc, err := nats.Connect(srv2.ClientURL(), givenOpt); err != nil {
		t.Errorf("nats.Connect with the given nkey: %v", err)
	} else {
		nc.Close()
	}
	if nc, err := nats.Connect(srv2.ClientURL(), opt, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Errorf("nats.Connect with a key other than the given one succeeded")
	}
}

// With a certificate and a CA, routes speak mutual TLS: two servers with
// certificates of the CA route to each other; a server whose certificate
// another CA signed is not let in.
func TestRoutesOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	creds := jetstream.Credentials{User: "route", Password: "a-long-enough-route-password"}
	a, b, c := freeAddr(t), freeAddr(t), freeAddr(t)
	start := func(name, listen string, cert, key, ca string) *jetstream.Server {
		t.Helper()
		srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0",
			Credentials: creds, TLSCertFile: cert, TLSKeyFile: key, TLSCAFile: ca,
			Cluster: &jetstream.ClusterConfig{Name: "tls", ServerName: name, Listen: listen, Peers: []string{a, b, c}}})
		if err != nil {
			t.Fatalf("StartServer %s: %v", name, err)
		}
		t.Cleanup(srv.Shutdown)
		return srv
	}
	if _, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0",
		Credentials: creds, TLSCertFile: certFile, TLSKeyFile: keyFile,
		Cluster: &jetstream.ClusterConfig{Name: "tls", ServerName: "x", Listen: freeAddr(t), Peers: []string{a}}}); err == nil {
		t.Error("StartServer with route TLS and no CA succeeded, want an error")
	}
	sa := start("a", a, certFile, keyFile, certFile)
	sb := start("b", b, certFile, keyFile, certFile)
	deadline := time.Now().Add(10 * time.Second)
	for jetstream.Routes(sa) == 0 || jetstream.Routes(sb) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("routes a=%d b=%d after 10 s, want a and b routed over TLS", jetstream.Routes(sa), jetstream.Routes(sb))
		}
		time.Sleep(50 * time.Millisecond)
	}
	otherCert, otherKey, _ := selfSigned(t, t.TempDir())
	sc := start("c", c, otherCert, otherKey, otherCert)
	time.Sleep(2 * time.Second) // c tries a and b
	if n := jetstream.Routes(sc); n != 0 {
		t.Errorf("server c (another CA) has %d routes, want none", n)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spectra-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
