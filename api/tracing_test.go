package api

import (
	"net/http"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// Without a tracer provider (the default: no exporter), a caller's trace
// still reaches the command's metadata, so the run's events name it.
func TestTraceparentReachesTheCommand(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, http.MethodPost, "/api/ion/runs", token(t, RoleEngineer, "org-1"), ionRecipe, "traceparent", traceparent)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /api/ion/runs = %d: %s", res.Status, res.Body)
	}
	md := h.b.lastCreate(t).Meta
	if md.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || md.SpanID == "" {
		t.Errorf("command metadata trace, span = %q, %q; want the caller's trace", md.TraceID, md.SpanID)
	}
}

// With a provider, each request is a server span, child of the caller's,
// and the command's metadata names that span.
func TestRequestSpanIsTheEventsParent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(t.Context()) })

	h := newHarness(t)
	res := h.do(t, http.MethodPost, "/api/ion/runs", token(t, RoleEngineer, "org-1"), ionRecipe, "traceparent", traceparent)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /api/ion/runs = %d: %s", res.Status, res.Body)
	}
	md := h.b.lastCreate(t).Meta
	var found bool
	for _, s := range rec.Ended() {
		if s.Name() != "POST /api/ion/runs" {
			continue
		}
		found = true
		if s.Parent().SpanID().String() != "00f067aa0ba902b7" || s.SpanContext().TraceID().String() != md.TraceID ||
			s.SpanContext().SpanID().String() != md.SpanID {
			t.Errorf("span %s (parent %s), metadata %s/%s: want the request span, child of the caller's, named in the metadata",
				s.SpanContext().SpanID(), s.Parent().SpanID(), md.TraceID, md.SpanID)
		}
	}
	if !found {
		t.Errorf("no span named POST /api/ion/runs among %d", len(rec.Ended()))
	}
}
