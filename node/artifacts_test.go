package node

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/process"
)

var _ actors.ArtifactSet = (*artifacts)(nil)

// A job's artifacts stored as one set open one by one, with their content
// types, beside artifacts stored one object each (before sets).
func TestArtifactSetOpensEachArtifact(t *testing.T) {
	n, err := Start(t.Context(), Config{DataDir: t.TempDir(), TimeScale: 0, JWTSecret: []byte("artifacts-test-secret-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	a := n.artifacts
	set := []process.Artifact{
		{Name: "telemetry.json", ContentType: "application/json", Data: []byte(`{"time_s":[0,0.1]}`)},
		{Name: "chart.svg", ContentType: "image/svg+xml", Data: bytes.Repeat([]byte("<svg/>"), 40000)}, // over one chunk
	}
	uris, err := a.PutSet(t.Context(), "ION-1/job-1", set)
	if err != nil {
		t.Fatalf("PutSet: %v", err)
	}
	if _, err := a.Put(t.Context(), "ION-0/job-0/old.json", "application/json", []byte(`{"old":true}`)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	for i, art := range set {
		if want := "nats://artifacts/ION-1/job-1/" + art.Name; uris[i] != want {
			t.Errorf("PutSet URI %d = %q, want %q", i, uris[i], want)
		}
	}
	for _, want := range append(set, process.Artifact{Name: "old.json", ContentType: "application/json", Data: []byte(`{"old":true}`)}) {
		key := "ION-1/job-1/" + want.Name
		if want.Name == "old.json" {
			key = "ION-0/job-0/old.json"
		}
		rc, ct, size, err := a.Open(t.Context(), key)
		if err != nil {
			t.Fatalf("Open(%s): %v", key, err)
		}
		got, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil || !bytes.Equal(got, want.Data) || ct != want.ContentType || size != int64(len(want.Data)) {
			t.Errorf("Open(%s) = %d bytes (%v), %q, size %d; want %d bytes, %q", key, len(got), err, ct, size, len(want.Data), want.ContentType)
		}
	}
	for _, key := range []string{"ION-1/job-1/missing.json", "ION-2/job-2/telemetry.json"} {
		if _, _, _, err := a.Open(t.Context(), key); !errors.Is(err, api.ErrArtifactGone) {
			t.Errorf("Open(%s) = %v, want ErrArtifactGone", key, err)
		}
	}
}
