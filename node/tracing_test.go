package node_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/spectra-fab/spectra/node"
)

// With --otlp-endpoint the node exports the API's request spans to the
// collector; Close flushes them.
func TestOTLPExportOfRequestSpans(t *testing.T) {
	var batches atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.ContentLength != 0 {
			batches.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	secret := []byte("otlp-test-secret-0123456789abcdef-0123")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), HTTPAddr: addr, TimeScale: 0,
		JWTSecret: secret, OTLPEndpoint: collector.URL + "/v1/traces"})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	waitReady(t, base)
	v := &apiValidator{t: t, base: base, seen: map[string][]int{}}
	recipe, err := os.ReadFile(filepath.Join("..", "examples", "ion-seed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := v.raw(http.MethodPost, "/api/ion/runs", issue(t, secret, "engineer", "org-1"), recipe,
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); resp.StatusCode != 201 {
		t.Fatalf("POST /api/ion/runs = %d: %s", resp.StatusCode, body)
	}
	n.Close()
	if batches.Load() == 0 {
		t.Error("the collector received no spans after Close")
	}
}
