package api

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestTokenCache: a verified token is remembered until its exp (plus the
// leeway), a failure never is, the cache stays bounded, and a cached
// identity-provider token stops with its key.
func TestTokenCache(t *testing.T) {
	v := verifier{secret: testSecret, cache: newTokenCache(3)}
	sign := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("remembers a success until exp", func(t *testing.T) {
		c := validClaims()
		tok := sign(c)
		p1, err := v.verify(tok)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		e, ok := v.cache.m[tok]
		if !ok {
			t.Fatal("a verified token is not remembered")
		}
		if want := time.Unix(c["exp"].(int64), 0).Add(tokenLeeway); !e.until.Equal(want) {
			t.Errorf("remembered until %v, want exp + leeway %v", e.until, want)
		}
		p2, err := v.verify(tok)
		if err != nil || p2 != p1 {
			t.Errorf("second verify = %+v, %v; want %+v", p2, err, p1)
		}
		v.cache.now = func() time.Time { return e.until }
		defer func() { v.cache.now = time.Now }()
		if _, ok := v.cache.get(v, tok); ok {
			t.Error("the cache answers for a token past exp + leeway")
		}
	})

	t.Run("never remembers a failure", func(t *testing.T) {
		clear(v.cache.m)
		expired := validClaims()
		expired["exp"] = time.Now().Add(-time.Hour).Unix()
		badSig := sign(validClaims())
		badSig = badSig[:len(badSig)-2] + "xx"
		notYet := validClaims()
		notYet["nbf"] = time.Now().Add(time.Hour).Unix()
		for _, tok := range []string{sign(expired), badSig, sign(notYet), sign(without(validClaims(), "org_id"))} {
			for range 2 { // the second time too: a failure is not remembered as anything
				var ue *Error
				if _, err := v.verify(tok); !errors.As(err, &ue) {
					t.Errorf("verify = %v, want an unauthorized error", err)
				}
			}
		}
		if n := len(v.cache.m); n != 0 {
			t.Errorf("%d failed tokens remembered", n)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		for i := range 10 {
			c := validClaims()
			c["jti"] = "j-" + strconv.Itoa(i)
			if _, err := v.verify(sign(c)); err != nil {
				t.Fatal(err)
			}
			if n := len(v.cache.m); n > 3 {
				t.Fatalf("%d tokens remembered, bound 3", n)
			}
		}
	})

	t.Run("key left the key set", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "jwks.json")
		write := func(keys ...map[string]string) {
			b, _ := json.Marshal(map[string]any{"keys": keys})
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		jwk := map[string]string{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())}
		write(jwk)
		jwks, err := OpenJWKS(path)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		jwks.now = func() time.Time { return now }
		v := verifier{secret: testSecret, jwks: jwks, cache: newTokenCache(10)}
		tk := jwt.NewWithClaims(jwt.SigningMethodRS256, validClaims())
		tk.Header["kid"] = "rsa-1"
		tok, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := v.verify(tok); err != nil {
				t.Fatalf("verify: %v", err)
			}
		}
		if _, ok := v.cache.m[tok]; !ok {
			t.Fatal("a verified RS256 token is not remembered")
		}
		write(map[string]string{"kty": "RSA", "kid": "rsa-2", "use": "sig", "alg": "RS256", "n": jwk["n"], "e": jwk["e"]})
		now = now.Add(jwksRecheck + time.Second)
		if _, err := v.verify(tok); err == nil {
			t.Error("a remembered token verifies after its key left the key set")
		}
	})
}
