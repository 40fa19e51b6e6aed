package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/rtp"
)

// Fuzz targets for what the API takes from strangers: recipes (the create
// path hands the body to these parsers), tokens, credentials and JSON
// nesting. Seed corpora live in testdata/fuzz/<target>; `make test` runs
// each target briefly.

func addRecipeSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(ionRecipe))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"segments":[{"target_temp_c":1e309}]}`))
}

// checkRecipeError: bad input gets a clear error — a *process.ValidationError
// with at least one field error that says what is wrong — and never a
// panic. (A field may be named "": JSON allows an empty key.)
func checkRecipeError(t *testing.T, data []byte, err error) {
	if err == nil {
		return
	}
	var ve *process.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) == 0 {
		t.Fatalf("parse %q: error %v (%T), want a *process.ValidationError naming fields", data, err, err)
	}
	for _, fe := range ve.Fields {
		if fe.Message == "" {
			t.Fatalf("parse %q: field error %+v says nothing", data, fe)
		}
	}
}

func FuzzIonRecipe(f *testing.F) {
	addRecipeSeeds(f, "../examples/ion-seed.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ion.ParseRecipe(data)
		checkRecipeError(t, data, err)
		if err != nil {
			return
		}
		// What parses is in range, and parses the same again.
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal %+v: %v", r, err)
		}
		if _, err := ion.ParseRecipe(again); err != nil {
			t.Fatalf("ParseRecipe(%q) = nil, but its re-encoding %q fails: %v", data, again, err)
		}
	})
}

func FuzzRTPRecipe(f *testing.F) {
	addRecipeSeeds(f, "../examples/rtp-seed.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := rtp.ParseRecipe(data)
		checkRecipeError(t, data, err)
	})
}

// fuzzSecret signs the token seeds; they expire in 2100.
var fuzzSecret = []byte("fuzz-secret-that-is-at-least-32-bytes-long!")

func FuzzToken(f *testing.F) {
	exp := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	claims := jwt.MapClaims{"sub": "u-1", "org_id": "org-1", "role": "viewer", "exp": exp, "jti": "j"}
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS384} {
		s, _ := jwt.NewWithClaims(m, claims).SignedString(fuzzSecret)
		f.Add(s)
	}
	s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	f.Add(s)
	f.Add("")
	f.Add("a.b.c")
	v := verifier{secret: fuzzSecret}
	other := verifier{secret: []byte("another-secret-that-is-at-least-32-bytes")}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.verify(raw)
		if err != nil {
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Code != CodeUnauthorized {
				t.Fatalf("verify(%q) = %v, want an unauthorized *Error", raw, err)
			}
			return
		}
		if p.UserID == "" || !validOrgID(p.OrgID) || !p.Role.Valid() {
			t.Fatalf("verify(%q) accepted %+v: want a subject, a well-formed org and a known role", raw, p)
		}
		if _, err := other.verify(raw); err == nil {
			t.Fatalf("verify(%q) accepted with another secret too", raw)
		}
	})
}

func FuzzCredentials(f *testing.F) {
	_, key := newAPIKey()
	_, refresh := newRefreshToken("0123456789abcdef")
	f.Add(key)
	f.Add(refresh)
	f.Add("spk__")
	f.Add("sprt_0123456789abcdef_0123456789abcdef_")
	f.Fuzz(func(t *testing.T, s string) {
		if id, ok := parseAPIKey(s); ok && !apiKeyIDPattern.MatchString(id) {
			t.Fatalf("parseAPIKey(%q) = %q, a malformed id", s, id)
		}
		if fam, id, ok := parseRefreshToken(s); ok && (!apiKeyIDPattern.MatchString(fam) || !apiKeyIDPattern.MatchString(id)) {
			t.Fatalf("parseRefreshToken(%q) = %q, %q: malformed ids", s, fam, id)
		}
	})
}

// FuzzJSONDepth: on valid JSON, checkDepth refuses exactly the bodies
// nested deeper than the limit.
func FuzzJSONDepth(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"b":"[{"}]}`), 2)
	f.Add([]byte(`[[[[]]]]`), 3)
	f.Add([]byte(`"\\\"{"`), 0)
	f.Add([]byte(`[5555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555]`), 1)
	f.Fuzz(func(t *testing.T, body []byte, limit int) {
		if !json.Valid(body) || limit < 0 || limit > 1000 {
			return
		}
		depth, maxDepth := 0, 0
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // valid JSON may hold numbers no float64 holds
		for {
			tok, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Token on valid %q: %v", body, err)
			}
			switch tok {
			case json.Delim('{'), json.Delim('['):
				depth++
				maxDepth = max(maxDepth, depth)
			case json.Delim('}'), json.Delim(']'):
				depth--
			}
		}
		if err := checkDepth(body, limit); (err == nil) != (maxDepth <= limit) {
			t.Fatalf("checkDepth(%q, %d) = %v; depth is %d", body, limit, err, maxDepth)
		}
	})
}
