package api

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signed signs arbitrary claims with method and key.
func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func validClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": "u-1", "email": "u@example.com", "org_id": "org-1", "role": "admin",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "j-1"}
}

func without(c jwt.MapClaims, name string) jwt.MapClaims {
	delete(c, name)
	return c
}

func with(c jwt.MapClaims, name string, v any) jwt.MapClaims {
	c[name] = v
	return c
}

func TestAuthenticationRefused(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		header string // the whole Authorization header; "" sends none
	}{
		{"no_token", ""},
		{"not_bearer", "Basic dXNlcjpwYXNz"},
		{"empty_bearer", "Bearer "},
		{"garbage", "Bearer not.a.jwt"},
		{"bad_signature", "Bearer " + signed(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-12"), validClaims())},
		{"alg_none", "Bearer " + signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims())},
		{"alg_hs512_same_secret", "Bearer " + signed(t, jwt.SigningMethodHS512, testSecret, validClaims())},
		{"expired", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret,
			with(validClaims(), "exp", time.Now().Add(-time.Hour).Unix()))},
		{"no_exp", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, without(validClaims(), "exp"))},
		{"issued_in_future", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret,
			with(validClaims(), "iat", time.Now().Add(time.Hour).Unix()))},
		{"missing_org_id", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, without(validClaims(), "org_id"))},
		{"missing_sub", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, without(validClaims(), "sub"))},
		{"missing_role", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, without(validClaims(), "role"))},
		{"unknown_role", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(validClaims(), "role", "superuser"))},
		{"role_wrong_type", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(validClaims(), "role", 7))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.header != "" {
				headers = []string{"Authorization", tt.header}
			}
			res := h.do(t, http.MethodGet, "/api/ion/runs", "", "", headers...)
			if res.Status != http.StatusUnauthorized {
				t.Fatalf("GET /api/ion/runs status = %d, want 401; body %s", res.Status, res.Body)
			}
			if e := res.Err(t); e.Code != CodeUnauthorized {
				t.Errorf("error code = %q, want %q", e.Code, CodeUnauthorized)
			}
			if got := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want Bearer challenge", got)
			}
		})
	}
}

func TestAuthenticationAccepted(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		tok  string
	}{
		{"issued", token(t, RoleViewer, "org-1")},
		{"foreign_issuer_same_claims", signed(t, jwt.SigningMethodHS256, testSecret, validClaims())},
		{"minimal_claims", signed(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u", "org_id": "o", "role": "viewer", "exp": time.Now().Add(time.Minute).Unix()})},
		{"expired_within_leeway", signed(t, jwt.SigningMethodHS256, testSecret,
			with(validClaims(), "exp", time.Now().Add(-5*time.Second).Unix()))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.do(t, http.MethodGet, "/api/ion/runs", tt.tok, "")
			if res.Status != http.StatusOK {
				t.Fatalf("GET /api/ion/runs status = %d, want 200; body %s", res.Status, res.Body)
			}
		})
	}
	t.Run("lowercase_scheme", func(t *testing.T) {
		res := h.do(t, http.MethodGet, "/api/ion/runs", "", "", "Authorization", "bearer "+token(t, RoleViewer, "org-1"))
		if res.Status != http.StatusOK {
			t.Fatalf("status = %d, want 200", res.Status)
		}
	})
}

func TestIssueToken(t *testing.T) {
	tok, err := IssueToken(testSecret, "u-7", "u7@example.com", "org-9", "engineer", time.Hour)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	p, err := parseToken(testSecret, tok)
	if err != nil {
		t.Fatalf("parseToken(IssueToken(...)): %v", err)
	}
	want := Principal{UserID: "u-7", Email: "u7@example.com", OrgID: "org-9", Role: RoleEngineer, TokenID: p.TokenID}
	if p != want || p.TokenID == "" {
		t.Errorf("parseToken = %+v, want %+v with a jti", p, want)
	}
	var claims Claims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		t.Fatalf("ParseUnverified: %v", err)
	}
	if claims.IssuedAt == nil || claims.ExpiresAt == nil || claims.ID == "" {
		t.Errorf("claims %+v lack iat, exp or jti", claims)
	}

	bad := []struct {
		name           string
		secret         []byte
		sub, org, role string
		ttl            time.Duration
	}{
		{"unknown_role", testSecret, "u", "o", "root", time.Hour},
		{"empty_secret", nil, "u", "o", "admin", time.Hour},
		{"no_sub", testSecret, "", "o", "admin", time.Hour},
		{"no_org", testSecret, "u", "", "admin", time.Hour},
		{"no_ttl", testSecret, "u", "o", "admin", 0},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := IssueToken(tt.secret, tt.sub, "", tt.org, tt.role, tt.ttl); err == nil {
				t.Errorf("IssueToken(%s) = nil error, want one", tt.name)
			}
		})
	}
}

func TestSecretsNeverLog(t *testing.T) {
	secret := "very-secret-value-that-must-not-leak"
	cfg := Config{JWTSecret: Secret(secret), Node: "n1"}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "config", cfg, "secret", cfg.JWTSecret)
	log.Info("text", "secret", fmt.Sprintf("%v %s %#v %+v", cfg.JWTSecret, cfg.JWTSecret, cfg.JWTSecret, cfg))
	if strings.Contains(buf.String(), secret) || strings.Contains(buf.String(), fmt.Sprint([]byte(secret))) {
		t.Errorf("log output contains the secret: %s", buf.String())
	}
}

func TestCheckSecret(t *testing.T) {
	if err := CheckSecret([]byte("short")); err == nil {
		t.Error("CheckSecret(short) = nil, want an error")
	}
	if err := CheckSecret(testSecret); err != nil {
		t.Errorf("CheckSecret(%d bytes) = %v, want nil", len(testSecret), err)
	}
}
