package api

import (
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"
)

// JWKS is a JSON Web Key Set file (RFC 7517) of public keys that verify
// access tokens of an identity provider: RSA keys for RS256 and Ed25519
// ("OKP") keys for EdDSA, chosen by the token's "kid". The file is re-read
// when it changes — checked at most every few seconds, and at once (at most
// once a second) when a token names a kid the set lacks — so an identity
// provider can rotate its keys without a restart. Private key members in
// the file are ignored.
type JWKS struct {
	path string

	mu      sync.Mutex
	keys    map[string]jwk
	mod     time.Time
	size    int64
	checked time.Time
	now     func() time.Time
}

type jwk struct {
	alg string // "RS256" or "EdDSA"
	key any    // *rsa.PublicKey or ed25519.PublicKey
}

// How often the JWKS file is checked for changes.
const (
	jwksRecheck       = 5 * time.Second
	jwksUnknownKidGap = time.Second
	minRSABits        = 2048
)

// OpenJWKS reads a JWKS file. It fails when the file cannot be read or
// holds no usable key.
func OpenJWKS(path string) (*JWKS, error) {
	j := &JWKS{path: path, now: time.Now}
	if err := j.reload(true); err != nil {
		return nil, err
	}
	return j, nil
}

// String names the file, not the keys.
func (j *JWKS) String() string { return "jwks(" + j.path + ")" }

// key returns the public key for kid usable with alg.
func (j *JWKS) key(kid, alg string) (any, error) {
	if kid == "" {
		return nil, errors.New("jwks: token has no kid")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	k, ok := j.keys[kid]
	if now.Sub(j.checked) >= jwksRecheck || (!ok && now.Sub(j.checked) >= jwksUnknownKidGap) {
		if err := j.reload(false); err != nil {
			// Keep the keys we have: a half-written file must not lock
			// everybody out.
			j.checked = now
		}
		k, ok = j.keys[kid]
	}
	if !ok {
		return nil, fmt.Errorf("jwks: unknown kid %q", kid)
	}
	if k.alg != alg {
		return nil, fmt.Errorf("jwks: kid %q is a %s key, token says %s", kid, k.alg, alg)
	}
	return k.key, nil
}

// reload re-reads the file when it changed (always when force is set).
// Callers other than OpenJWKS hold j.mu.
func (j *JWKS) reload(force bool) error {
	j.checked = j.now()
	fi, err := os.Stat(j.path)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	if !force && fi.ModTime().Equal(j.mod) && fi.Size() == j.size {
		return nil
	}
	data, err := os.ReadFile(j.path)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return fmt.Errorf("jwks %s: %w", j.path, err)
	}
	j.keys, j.mod, j.size = keys, fi.ModTime(), fi.Size()
	return nil
}

// parseJWKS decodes a key set, keeping the signature keys it can use.
func parseJWKS(data []byte) (map[string]jwk, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			Crv string `json:"crv"`
			N   string `json:"n"`
			E   string `json:"e"`
			X   string `json:"x"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	keys := map[string]jwk{}
	var errs []error
	for i, k := range set.Keys {
		if k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		switch {
		case k.Kty == "RSA" && (k.Alg == "" || k.Alg == "RS256"):
			n, err1 := base64.RawURLEncoding.DecodeString(k.N)
			e, err2 := base64.RawURLEncoding.DecodeString(k.E)
			if err := errors.Join(err1, err2); err != nil || len(e) == 0 || len(e) > 4 {
				errs = append(errs, fmt.Errorf("key %d (%s): malformed RSA key", i, k.Kid))
				continue
			}
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
			if pub.N.BitLen() < minRSABits || pub.E < 3 {
				errs = append(errs, fmt.Errorf("key %d (%s): RSA key too weak", i, k.Kid))
				continue
			}
			keys[k.Kid] = jwk{alg: "RS256", key: pub}
		case k.Kty == "OKP" && k.Crv == "Ed25519" && (k.Alg == "" || k.Alg == "EdDSA"):
			x, err := base64.RawURLEncoding.DecodeString(k.X)
			if err != nil || len(x) != ed25519.PublicKeySize {
				errs = append(errs, fmt.Errorf("key %d (%s): malformed Ed25519 key", i, k.Kid))
				continue
			}
			keys[k.Kid] = jwk{alg: "EdDSA", key: ed25519.PublicKey(x)}
		}
	}
	if len(keys) == 0 {
		errs = append(errs, errors.New("no RS256 or EdDSA signature key"))
		return nil, errors.Join(errs...)
	}
	return keys, nil
}
