package cluster

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// TLS is the mutual TLS of actor remoting: every member presents a
// certificate of the cluster's CA and accepts only peers that do. Members
// are interchangeable (any may host any grain), so a certificate proves
// membership, not a host name: peers check the chain, not the name.
type TLS struct {
	// Server accepts members; Client dials them.
	Server, Client *tls.Config
}

// caLabel separates the CA derived from the cluster secret from any other
// use of the secret.
const caLabel = "spectra cluster CA for actor remoting v1"

// minSecret is the shortest cluster secret a CA is derived from.
const minSecret = 16

// TLSFromSecret derives the cluster's CA from secret, the credential every
// node already shares (the NATS password of the cluster), and issues this
// node a certificate of it. Nodes need no files: whoever knows the secret
// can join, as with NATS itself, and nobody else can talk to the actor
// systems. The CA key is Ed25519 from HKDF-SHA256(secret); the node's key
// is fresh at every start.
func TLSFromSecret(secret, node string) (*TLS, error) {
	if len(secret) < minSecret {
		return nil, fmt.Errorf("actor remoting TLS: the cluster secret has %d characters, want at least %d", len(secret), minSecret)
	}
	seed, err := hkdf.Key(sha256.New, []byte(secret), nil, caLabel, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("actor remoting TLS: %w", err)
	}
	caKey := ed25519.NewKeyFromSeed(seed)
	// Fixed fields and Ed25519's deterministic signatures: every node
	// derives the very same CA certificate.
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "spectra cluster CA"},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("actor remoting TLS: CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("actor remoting TLS: CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("actor remoting TLS: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("actor remoting TLS: %w", err)
	}
	now := time.Now()
	leafTmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node},
		DNSNames:     []string{node},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0), // a node restarts well within a year
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("actor remoting TLS: node certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return newTLS(tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}, pool), nil
}

// TLSFromFiles reads the CA (PEM, one or more certificates) and this
// node's certificate and key (PEM) from an operator's own PKI, for
// example cert-manager in Kubernetes.
func TLSFromFiles(caFile, certFile, keyFile string) (*TLS, error) {
	if caFile == "" || certFile == "" || keyFile == "" {
		return nil, errors.New("actor remoting TLS: the CA, certificate and key files go together")
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("actor remoting TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("actor remoting TLS: no certificate in %s", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("actor remoting TLS: %w", err)
	}
	return newTLS(cert, pool), nil
}

func newTLS(cert tls.Certificate, pool *x509.CertPool) *TLS {
	// The peer's chain is checked against the cluster CA in
	// VerifyConnection; the standard check would also want the dialled
	// host in the certificate, which a member's certificate does not
	// promise (pods, containers and laptops name hosts differently).
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return fmt.Errorf("peer is not a member of this cluster: %w", err)
		}
		return nil
	}
	return &TLS{
		Server: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAnyClientCert, VerifyConnection: verify},
		Client: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			InsecureSkipVerify: true, VerifyConnection: verify}, //nolint:gosec // the chain is verified in VerifyConnection
	}
}
