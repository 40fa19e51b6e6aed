package node_test

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/projections"
)

// An event a projection cannot apply stops that projection there; /readyz
// answers 503 naming it, its position and the error, and the metric shows
// it, while the other projections go on.
func TestReadyzReportsAStoppedProjection(t *testing.T) {
	n, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), TimeScale: 0,
		JWTSecret: []byte("ready-test-secret-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	// A RunRequested whose data does not decode (a writer with a bug).
	bad := events.Event{ID: "00000000-0000-4000-8000-000000000001", Type: events.TypeRunRequested + ".v1",
		Data: json.RawMessage(`{"kind": 7}`), Metadata: events.Metadata{OrgID: "org-1", UserID: "u-1"}}
	res, err := n.Store().Append(t.Context(), events.RunStream("ION-20261203-BADBADBA"), events.ExpectAny, bad)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := n.Runner().WaitFor(t.Context(), res.Position); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(n.Runner().Failures()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	resp, err := n.API().App().Test(httptest.NewRequest("GET", "/readyz", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error   struct{ Code, Message string }
		Stopped []projections.Failure `json:"projections_stopped"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || body.Error.Code != "unavailable" || len(body.Stopped) == 0 {
		t.Fatalf("GET /readyz = %d %+v, want 503 naming the stopped projections", resp.StatusCode, body)
	}
	for _, f := range body.Stopped {
		if f.Position != res.Position || f.Type != bad.Type || f.Error == "" {
			t.Errorf("stopped projection %+v, want position %d, type %s and an error", f, res.Position, bad.Type)
		}
	}
	if !strings.Contains(body.Error.Message, body.Stopped[0].Projection) {
		t.Errorf("readyz message %q does not name %s", body.Error.Message, body.Stopped[0].Projection)
	}

	resp, err = n.API().App().Test(httptest.NewRequest("GET", "/metrics", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	want := `spectra_projection_stopped{projection="` + body.Stopped[0].Projection + `"} 1`
	if !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %q", want)
	}
	if !strings.Contains(string(metrics), `spectra_projection_stopped{projection="jobstatus"} 0`) {
		t.Errorf("/metrics lacks the jobstatus projection running (0)")
	}
}
