package api

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The claims the JWT library leaves to us: time claims must be numbers, a
// token may not live longer than the maximum, and an identity provider's
// tokens carry the configured issuer and audience.
func TestTokenClaimsPolicy(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "rsa-1", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(rsaKey.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(rsaKey.E)).Bytes())}}})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	jwks, err := OpenJWKS(path)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config, _ *Deps) {
		c.JWKS, c.JWTIssuer, c.JWTAudience, c.MaxTokenLifetime = jwks, "https://idp.fab.example", "spectra", 8*time.Hour
	})
	idp := func(claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = "rsa-1"
		s, err := tok.SignedString(rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	idpClaims := func() jwt.MapClaims {
		return with(with(validClaims(), "iss", "https://idp.fab.example"), "aud", []string{"spectra"})
	}
	now := time.Now()
	tests := []struct {
		name string
		tok  string
		want int
	}{
		{"idp_token", idp(idpClaims()), 200},
		{"idp_wrong_issuer", idp(with(idpClaims(), "iss", "https://evil.example")), 401},
		{"idp_no_issuer", idp(without(idpClaims(), "iss")), 401},
		{"idp_wrong_audience", idp(with(idpClaims(), "aud", []string{"other-service"})), 401},
		{"idp_no_audience", idp(without(idpClaims(), "aud")), 401},
		{"own_hs256_without_iss_aud", signed(t, jwt.SigningMethodHS256, testSecret, validClaims()), 200},
		{"exp_as_string", signed(t, jwt.SigningMethodHS256, testSecret,
			with(validClaims(), "exp", "tomorrow")), 401},
		{"exp_numeric_string", signed(t, jwt.SigningMethodHS256, testSecret,
			with(validClaims(), "exp", "9999999999")), 401},
		{"iat_numeric_string", signed(t, jwt.SigningMethodHS256, testSecret,
			with(validClaims(), "iat", "1")), 401},
		{"lifetime_over_max", signed(t, jwt.SigningMethodHS256, testSecret,
			with(validClaims(), "exp", now.Add(9*time.Hour).Unix())), 401},
		{"lifetime_over_max_without_iat", signed(t, jwt.SigningMethodHS256, testSecret,
			with(without(validClaims(), "iat"), "exp", now.Add(30*24*time.Hour).Unix())), 401},
		{"lifetime_at_max", signed(t, jwt.SigningMethodHS256, testSecret,
			with(validClaims(), "exp", now.Add(8*time.Hour).Unix())), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.do(t, http.MethodGet, "/api/jobs", tt.tok, "").Status; got != tt.want {
				t.Errorf("GET /api/jobs = %d, want %d", got, tt.want)
			}
		})
	}
}

// Every response says nosniff and carries a Content-Security-Policy; an
// SVG runs no script.
func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/healthz", "/api/jobs", "/nope"} {
		res := h.do(t, http.MethodGet, path, token(t, RoleViewer, "org-1"), "")
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options = %q, want nosniff", path, got)
		}
		if got := res.Header.Get("Content-Security-Policy"); got == "" {
			t.Errorf("GET %s: no Content-Security-Policy", path)
		}
	}
}
