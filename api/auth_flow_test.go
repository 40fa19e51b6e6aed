package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

// TestForgedTokens sends forged and invalid tokens to the real stack: each
// is refused with 401 in the one error shape. Those whose signature is good
// (expired, not yet valid, unknown role) are audited in their
// organisation; forgeries are not, since their claims cannot be trusted.
func TestForgedTokens(t *testing.T) {
	st := newSecStack(t)
	valid := token(t, RoleAdmin, "org-1")
	parts := strings.Split(valid, ".")
	var payload map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(raw, &payload)
	payload["role"] = "admin"
	payload["org_id"] = "org-2"
	tampered, _ := json.Marshal(payload)

	tests := []struct {
		name    string
		tok     string
		audited bool
	}{
		{"alg_none", signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims()), false},
		{"hs256_other_secret", signed(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-1234"), validClaims()), false},
		{"hs512_same_secret", signed(t, jwt.SigningMethodHS512, testSecret, validClaims()), false},
		{"expired", signed(t, jwt.SigningMethodHS256, testSecret, with(validClaims(), "exp", time.Now().Add(-time.Hour).Unix())), true},
		{"not_yet_valid", signed(t, jwt.SigningMethodHS256, testSecret, with(validClaims(), "nbf", time.Now().Add(time.Hour).Unix())), true},
		{"missing_org_id", signed(t, jwt.SigningMethodHS256, testSecret, without(validClaims(), "org_id")), false},
		{"malformed_org_id", signed(t, jwt.SigningMethodHS256, testSecret, with(validClaims(), "org_id", "org 1/../x")), false},
		{"missing_exp", signed(t, jwt.SigningMethodHS256, testSecret, without(validClaims(), "exp")), false},
		{"unknown_role", signed(t, jwt.SigningMethodHS256, testSecret, with(validClaims(), "role", "root")), true},
		{"tampered_payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(tampered) + "." + parts[2], false},
		{"rs256_without_jwks", signedRS256(t, validClaims()), false},
		{"unknown_session", signed(t, jwt.SigningMethodHS256, testSecret, with(validClaims(), "sid", "0123456789abcdef")), true},
	}
	var lastDenial uint64 // the audit query waits for the read model to reach it
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := st.do(t, http.MethodGet, "/api/jobs", "", bearer(tt.tok)...)
			if res.Status != http.StatusUnauthorized {
				t.Fatalf("GET /api/jobs = %d, want 401; body %s", res.Status, res.Body)
			}
			if e := res.Err(t); e.Code != CodeUnauthorized {
				t.Errorf("code = %q, want %q", e.Code, CodeUnauthorized)
			}
			pos := res.Header.Get(HeaderPosition)
			if tt.audited != (pos != "") {
				t.Errorf("audited = %v (position %q), want %v", pos != "", pos, tt.audited)
			}
			if p, err := strconv.ParseUint(pos, 10, 64); err == nil && p > lastDenial {
				lastDenial = p
			}
		})
	}
	entries := st.auditEntries(t, "org-1", "type=access_denied", strconv.FormatUint(lastDenial, 10))
	if len(entries) != 4 {
		t.Errorf("org-1 audit has %d denials, want 4 (expired, not yet valid, unknown role, unknown session): %+v", len(entries), entries)
	}
	for _, e := range entries {
		if e.UserID != "u-1" || e.Details["status"] != float64(401) {
			t.Errorf("denial %+v, want u-1's 401", e)
		}
	}
	if strings.Contains(st.logs.String(), string(testSecret)) {
		t.Error("the JWT secret appears in the logs")
	}
}

func signedRS256(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// issueKey issues an API key of role as an admin of org and returns its id
// and the key.
func (st *secStack) issueKey(t *testing.T, org string, role Role) (id, key string) {
	t.Helper()
	res := st.do(t, http.MethodPost, "/api/auth/api-keys", `{"name":"ci","role":"`+string(role)+`","ttl":"720h"}`,
		as(t, RoleAdmin, org)...)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /api/auth/api-keys = %d %s", res.Status, res.Body)
	}
	m := res.JSON(t)
	id, _ = m["id"].(string)
	key, _ = m["key"].(string)
	if !strings.HasPrefix(key, apiKeyPrefix+id+"_") {
		t.Fatalf("key %q does not start with its id %q", key, id)
	}
	return id, key
}

func TestAPIKeyLifecycle(t *testing.T) {
	st := newSecStack(t, func(c *Config) { c.DeniedWindow = 100 * time.Millisecond })
	id, key := st.issueKey(t, "org-1", RoleEngineer)
	apiKey := []string{HeaderAPIKey, key}

	// It works, as the role it was issued with, in its organisation.
	if res := st.do(t, http.MethodGet, "/api/jobs", "", apiKey...); res.Status != http.StatusOK {
		t.Fatalf("GET /api/jobs with the key = %d %s", res.Status, res.Body)
	}
	res := st.do(t, http.MethodPost, "/api/ion/runs", `{"steps":100000}`, append(apiKey, HeaderRequestID, "req-key-1")...)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /api/ion/runs with the key = %d %s", res.Status, res.Body)
	}
	runID, _ := res.JSON(t)["run_id"].(string)
	recs, err := st.store.ReadStream(t.Context(), events.RunStream(runID), events.Forwards, 0, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ReadStream: %v", err)
	}
	if md := recs[0].Metadata; md.UserID != "apikey:"+id || md.OrgID != "org-1" || md.Role != "engineer" || md.RequestID != "req-key-1" {
		t.Errorf("RunRequested metadata = %+v, want the key's identity and the request id", md)
	}
	if res := st.do(t, http.MethodPost, "/api/auth/api-keys", `{"name":"x","role":"admin"}`, apiKey...); res.Status != http.StatusForbidden {
		t.Errorf("an engineer key issuing keys = %d, want 403", res.Status)
	}

	// The list shows it without the key or its hash.
	res = st.do(t, http.MethodGet, "/api/auth/api-keys", "", as(t, RoleAdmin, "org-1")...)
	if res.Status != http.StatusOK || strings.Contains(string(res.Body), key) || strings.Contains(string(res.Body), hashSecret(key)) {
		t.Fatalf("GET /api/auth/api-keys = %d %s: want 200 without secrets", res.Status, res.Body)
	}
	if !strings.Contains(string(res.Body), `"id":"`+id+`"`) {
		t.Errorf("list %s lacks key %s", res.Body, id)
	}
	if res := st.do(t, http.MethodGet, "/api/auth/api-keys", "", as(t, RoleAdmin, "org-2")...); strings.Contains(string(res.Body), id) {
		t.Errorf("org-2's list shows org-1's key: %s", res.Body)
	}
	// Stored only as a hash.
	recs, _ = st.store.ReadStream(t.Context(), "apikey-"+id, events.Forwards, 0, 0)
	if len(recs) != 1 || strings.Contains(string(recs[0].Data), key) || !strings.Contains(string(recs[0].Data), hashSecret(key)) {
		t.Errorf("apikey stream = %+v, want one ApiKeyIssued holding the hash only", recs)
	}

	// Another organisation's admin cannot revoke it: 404, audited.
	if res := st.do(t, http.MethodDelete, "/api/auth/api-keys/"+id, "", as(t, RoleAdmin, "org-2")...); res.Status != http.StatusNotFound {
		t.Errorf("DELETE by org-2 = %d, want 404", res.Status)
	}
	// A wrong secret for a real key id is refused and audited.
	wrong := key[:len(key)-2] + "AA"
	if wrong == key {
		wrong = key[:len(key)-2] + "BB"
	}
	if res := st.do(t, http.MethodGet, "/api/jobs", "", HeaderAPIKey, wrong); res.Status != http.StatusUnauthorized || res.Header.Get(HeaderPosition) == "" {
		t.Errorf("wrong secret = %d (audit position %q), want an audited 401", res.Status, res.Header.Get(HeaderPosition))
	}

	// Revoked: refused at once.
	res = st.do(t, http.MethodDelete, "/api/auth/api-keys/"+id, `{"reason":"rotated"}`, as(t, RoleAdmin, "org-1")...)
	if res.Status != http.StatusOK || res.JSON(t)["status"] != "revoked" {
		t.Fatalf("DELETE /api/auth/api-keys/%s = %d %s", id, res.Status, res.Body)
	}
	if res := st.do(t, http.MethodGet, "/api/jobs", "", apiKey...); res.Status != http.StatusUnauthorized {
		t.Fatalf("GET with the revoked key = %d, want 401", res.Status)
	}
	if res := st.do(t, http.MethodPost, "/api/auth/token", "", apiKey...); res.Status != http.StatusUnauthorized {
		t.Fatalf("token exchange with the revoked key = %d, want 401", res.Status)
	}

	entries := st.auditEntries(t, "org-1", "", st.head(t))
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{projections.ActionAPIKeyIssued, projections.ActionCreated, projections.ActionAccessDenied,
		projections.ActionAPIKeyRevoked} {
		if !contains(actions, want) {
			t.Errorf("org-1 audit actions %v lack %s", actions, want)
		}
	}
	for _, e := range st.auditEntries(t, "org-2", "type=access_denied", "") {
		if e.Details["resource"] == "apikey:"+id {
			t.Errorf("org-2's audit records its own probe of org-1's key (the prober can read it): %+v", e)
		}
	}
	// The probe is in the key's organisation's audit once its window closes.
	var probed bool
	for deadline := time.Now().Add(5 * time.Second); !probed && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, e := range st.auditEntries(t, "org-1", "type=access_denied", st.head(t)) {
			probed = probed || (e.Details["resource"] == "apikey:"+id && e.Details["from_org"] == "org-2")
		}
	}
	if !probed {
		t.Error("org-1's audit lacks org-2's admin's attempt on its key")
	}

	if logs := st.logs.String(); strings.Contains(logs, key) || strings.Contains(logs, hashSecret(key)) {
		t.Error("the API key or its hash appears in the logs")
	}

	t.Run("bad_requests", func(t *testing.T) {
		for _, body := range []string{`{"name":"x","role":"root"}`, `{"role":"viewer"}`, `{"name":"x","role":"viewer","ttl":"1s"}`,
			`{"name":"x","role":"viewer","admin":true}`, `[]`} {
			if res := st.do(t, http.MethodPost, "/api/auth/api-keys", body, as(t, RoleAdmin, "org-1")...); res.Status != http.StatusUnprocessableEntity {
				t.Errorf("POST %s = %d, want 422", body, res.Status)
			}
		}
		if res := st.do(t, http.MethodGet, "/api/jobs", "", HeaderAPIKey, "spk_nonsense"); res.Status != http.StatusUnauthorized {
			t.Errorf("malformed key = %d, want 401", res.Status)
		}
	})
}

// tokens is a token-endpoint answer.
type tokens struct {
	Access, Refresh string
}

func (st *secStack) exchange(t *testing.T, path, body string, headers ...string) (tokens, response) {
	t.Helper()
	res := st.do(t, http.MethodPost, path, body, headers...)
	var tr tokenResponse
	_ = json.Unmarshal(res.Body, &tr)
	return tokens{tr.AccessToken, tr.RefreshToken}, res
}

func TestRefreshTokens(t *testing.T) {
	st := newSecStack(t, func(c *Config) { c.AccessTokenTTL = time.Minute })
	keyID, key := st.issueKey(t, "org-1", RoleOperator)

	first, res := st.exchange(t, "/api/auth/token", "", HeaderAPIKey, key)
	if res.Status != http.StatusOK || first.Access == "" || first.Refresh == "" {
		t.Fatalf("POST /api/auth/token = %d %s", res.Status, res.Body)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer Cache-Control = %q, want no-store", res.Header.Get("Cache-Control"))
	}
	if res := st.do(t, http.MethodGet, "/api/jobs", "", bearer(first.Access)...); res.Status != http.StatusOK {
		t.Fatalf("GET with the access token = %d %s", res.Status, res.Body)
	}

	second, res := st.exchange(t, "/api/auth/refresh", `{"refresh_token":"`+first.Refresh+`"}`)
	if res.Status != http.StatusOK || second.Refresh == first.Refresh {
		t.Fatalf("POST /api/auth/refresh = %d %s", res.Status, res.Body)
	}
	if res := st.do(t, http.MethodGet, "/api/jobs", "", bearer(second.Access)...); res.Status != http.StatusOK {
		t.Fatalf("GET with the refreshed access token = %d", res.Status)
	}

	// Reusing the spent refresh token revokes the whole family.
	if _, res := st.exchange(t, "/api/auth/refresh", `{"refresh_token":"`+first.Refresh+`"}`); res.Status != http.StatusUnauthorized {
		t.Fatalf("reused refresh token = %d, want 401", res.Status)
	}
	for name, tok := range map[string]string{"first access": first.Access, "second access": second.Access} {
		if res := st.do(t, http.MethodGet, "/api/jobs", "", bearer(tok)...); res.Status != http.StatusUnauthorized {
			t.Errorf("GET with the %s token after the family was revoked = %d, want 401", name, res.Status)
		}
	}
	if _, res := st.exchange(t, "/api/auth/refresh", `{"refresh_token":"`+second.Refresh+`"}`); res.Status != http.StatusUnauthorized {
		t.Errorf("current refresh token of a revoked family = %d, want 401", res.Status)
	}
	entries := st.auditEntries(t, "org-1", "type=token_family_revoked", st.head(t))
	if len(entries) != 1 || entries[0].Details["reason"] != "refresh token reused" {
		t.Errorf("token_family_revoked entries = %+v, want one for the reuse", entries)
	}

	// A new family dies with its API key.
	third, _ := st.exchange(t, "/api/auth/token", `{"api_key":"`+key+`"}`)
	if res := st.do(t, http.MethodGet, "/api/jobs", "", bearer(third.Access)...); res.Status != http.StatusOK {
		t.Fatalf("GET with a new family's token = %d", res.Status)
	}
	st.do(t, http.MethodDelete, "/api/auth/api-keys/"+keyID, "", as(t, RoleAdmin, "org-1")...)
	if res := st.do(t, http.MethodGet, "/api/jobs", "", bearer(third.Access)...); res.Status != http.StatusUnauthorized {
		t.Errorf("access token of a revoked key's family = %d, want 401", res.Status)
	}
	if _, res := st.exchange(t, "/api/auth/refresh", `{"refresh_token":"`+third.Refresh+`"}`); res.Status != http.StatusUnauthorized {
		t.Errorf("refresh of a revoked key's family = %d, want 401", res.Status)
	}

	for _, secret := range []string{key, first.Refresh, second.Refresh, first.Access} {
		if strings.Contains(st.logs.String(), secret) {
			t.Errorf("a credential appears in the logs: %.12s…", secret)
		}
	}

	t.Run("bad_requests", func(t *testing.T) {
		cases := []struct {
			body string
			want int
		}{
			{`{"refresh_token":"sprt_nope"}`, 401},
			{`{"refresh_token":"` + strings.Replace(third.Refresh, "_", "_f", 1) + `"}`, 401},
			{`{}`, 422},
			{`{"refresh_token":"x","extra":1}`, 422},
			{`not json`, 422},
		}
		for _, c := range cases {
			if _, res := st.exchange(t, "/api/auth/refresh", c.body); res.Status != c.want {
				t.Errorf("POST /api/auth/refresh %s = %d, want %d", c.body, res.Status, c.want)
			}
		}
		if _, res := st.exchange(t, "/api/auth/token", ""); res.Status != http.StatusUnauthorized {
			t.Errorf("token exchange without a key = %d, want 401", res.Status)
		}
	})
}

// TestJWKS verifies RS256 and EdDSA tokens from a JWKS file, follows a key
// rotation in the file, and keeps each algorithm to its key type.
func TestJWKS(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	path := filepath.Join(t.TempDir(), "jwks.json")
	write := func(keys ...map[string]string) {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rsaJWK := map[string]string{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(rsaKey.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(rsaKey.E)).Bytes())}
	edJWK := map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": base64.RawURLEncoding.EncodeToString(edPub)}
	write(rsaJWK)
	jwks, err := OpenJWKS(path)
	if err != nil {
		t.Fatalf("OpenJWKS: %v", err)
	}
	now := time.Now()
	jwks.now = func() time.Time { return now }
	h := newHarness(t, func(c *Config, _ *Deps) { c.JWKS = jwks })

	sign := func(m jwt.SigningMethod, kid string, key any) string {
		tok := jwt.NewWithClaims(m, validClaims())
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	get := func(tok string) int { return h.do(t, http.MethodGet, "/api/jobs", tok, "").Status }

	if s := get(sign(jwt.SigningMethodRS256, "rsa-1", rsaKey)); s != http.StatusOK {
		t.Errorf("RS256 with a JWKS key = %d, want 200", s)
	}
	if s := get(token(t, RoleViewer, "org-1")); s != http.StatusOK {
		t.Errorf("HS256 with the secret alongside a JWKS = %d, want 200", s)
	}
	if s := get(sign(jwt.SigningMethodEdDSA, "ed-1", edPriv)); s != http.StatusUnauthorized {
		t.Errorf("EdDSA with a kid not yet in the file = %d, want 401", s)
	}
	// Rotation: the provider adds the Ed25519 key.
	write(rsaJWK, edJWK)
	now = now.Add(2 * time.Second)
	if s := get(sign(jwt.SigningMethodEdDSA, "ed-1", edPriv)); s != http.StatusOK {
		t.Errorf("EdDSA after rotation = %d, want 200", s)
	}
	// Algorithm confusion: the RSA public key as an HMAC secret.
	pubPEMish := rsaKey.PublicKey.N.Bytes()
	if s := get(sign(jwt.SigningMethodHS256, "rsa-1", pubPEMish)); s != http.StatusUnauthorized {
		t.Errorf("HS256 signed with the RSA public key = %d, want 401", s)
	}
	if s := get(sign(jwt.SigningMethodRS256, "ed-1", rsaKey)); s != http.StatusUnauthorized {
		t.Errorf("RS256 naming the Ed25519 kid = %d, want 401", s)
	}
	if s := get(sign(jwt.SigningMethodRS256, "", rsaKey)); s != http.StatusUnauthorized {
		t.Errorf("RS256 without kid = %d, want 401", s)
	}
	// The old key is dropped from the file: refused after the recheck.
	write(edJWK)
	now = now.Add(jwksRecheck + time.Second)
	if s := get(sign(jwt.SigningMethodRS256, "rsa-1", rsaKey)); s != http.StatusUnauthorized {
		t.Errorf("RS256 after its key left the file = %d, want 401", s)
	}

	if _, err := OpenJWKS(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("OpenJWKS of a missing file: nil error")
	}
	weak := filepath.Join(t.TempDir(), "weak.json")
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "w",
		"n": base64.RawURLEncoding.EncodeToString(small.N.Bytes()), "e": "AQAB"}}})
	_ = os.WriteFile(weak, b, 0o600)
	if _, err := OpenJWKS(weak); err == nil {
		t.Error("OpenJWKS with a 1024-bit RSA key only: nil error")
	}
}
