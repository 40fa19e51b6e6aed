package cluster_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/cluster"
)

// handshake runs one TLS handshake between a server and a client config
// over loopback and returns the client's and the server's errors.
func handshake(t *testing.T, server, client *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			// TLS 1.3: the client's certificate is checked after the
			// client finished; a read sees the outcome.
			_, err = tc.Write([]byte("x"))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, client)
	clientErr = tc.Handshake()
	if clientErr == nil {
		_, clientErr = io.ReadFull(tc, make([]byte, 1))
	}
	return clientErr, <-done
}

// Members whose certificates derive from the same cluster secret accept
// each other; a member of another cluster, or a client without a
// certificate, is refused.
func TestTLSFromSecretAdmitsOnlyMembers(t *testing.T) {
	const secret = "cluster-secret-0123456789"
	a, err := cluster.TLSFromSecret(secret, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := cluster.TLSFromSecret(secret, "node-b")
	if err != nil {
		t.Fatal(err)
	}
	if ce, se := handshake(t, a.Server, b.Client); ce != nil || se != nil {
		t.Fatalf("members of one cluster: client %v, server %v; want a connection", ce, se)
	}
	other, err := cluster.TLSFromSecret("another-secret-0123456789", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, se := handshake(t, a.Server, other.Client); se == nil {
		t.Error("a server accepted a client of another cluster")
	}
	if ce, _ := handshake(t, other.Server, a.Client); ce == nil {
		t.Error("a client accepted a server of another cluster")
	}
	anon := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} //nolint:gosec // the attacker's side
	if _, se := handshake(t, a.Server, anon); se == nil {
		t.Error("a server accepted a client without a certificate")
	}
	if _, err := cluster.TLSFromSecret("short", "node-a"); err == nil {
		t.Error("a 5-character secret was accepted")
	}
	if _, err := cluster.TLSFromFiles("", "cert.pem", ""); err == nil {
		t.Error("TLS files without a CA were accepted")
	}
}

// An operator's PKI: two nodes with certificates of one CA accept each
// other, and refuse a member of a secret-derived cluster.
func TestTLSFromFiles(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ops CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", "CERTIFICATE", caDER)
	node := func(name string) *cluster.TLS {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
			DNSNames: []string{name + ".spectra"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		c, err := cluster.TLSFromFiles(caFile, write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", kder))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := node("spectra-0"), node("spectra-1")
	if ce, se := handshake(t, a.Server, b.Client); ce != nil || se != nil {
		t.Fatalf("nodes of one CA: client %v, server %v; want a connection", ce, se)
	}
	derived, _ := cluster.TLSFromSecret("cluster-secret-0123456789", "spectra-2")
	if _, se := handshake(t, a.Server, derived.Client); se == nil {
		t.Error("a node of the operator's CA accepted a certificate of another CA")
	}
}
