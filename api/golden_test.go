package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/process"
)

var update = flag.Bool("update", false, "update golden files")

// golden compares an indented JSON body with testdata/name.golden, so that
// wire changes show up in review.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		t.Fatalf("indent %s: %v", body, err)
	}
	buf.WriteByte('\n')
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestGoldenResponses(t *testing.T) {
	h := newHarness(t)
	h.b.addRun(completedIonRun("org-1"))
	tok := token(t, RoleAdmin, "org-1")
	rid := []string{"X-Request-ID", "req-golden"}

	res := h.do(t, http.MethodPost, "/api/ion/runs", tok, ionRecipe, rid...)
	golden(t, "ion_run_created", res.Body)

	res = h.do(t, http.MethodGet, "/api/ion/runs/ION-20260101-A1B2C3D4", tok, "", rid...)
	golden(t, "ion_run_completed", res.Body)

	res = h.do(t, http.MethodGet, "/api/ion/runs/ION-20260101-FFFFFFFF", tok, "", rid...)
	golden(t, "error_not_found", res.Body)

	h.b.setErr(&process.ValidationError{Fields: []process.FieldError{
		{Field: "energy_kev", Value: 500, Allowed: "1–200", Message: "energy out of range"}}})
	res = h.do(t, http.MethodPost, "/api/ion/runs", tok, ionRecipe, rid...)
	golden(t, "error_validation", res.Body)
}
