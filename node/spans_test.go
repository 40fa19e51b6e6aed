package node_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
)

// One create is one trace: the API request's span, the command's
// (actors.CreateRun) under it, the run actor's handling of it (its start
// decision, which records RunQueued and RunStarted of a run admitted at
// once) under the command, and each append under what made it; the
// events name the span that decided them.
func TestCreateIsOneTraceOfSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(t.Context()) })

	secret := []byte("spans-test-secret-0123456789abcdef-0123")
	n, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), TimeScale: 0, JWTSecret: secret,
		Engines: map[process.Kind]actors.EngineFactory{process.KindIon: processtest.Factory{Kind: process.KindIon}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	tok, err := api.IssueToken(secret, "u-1", "u@example.com", "org-1", "engineer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/api/ion/runs", strings.NewReader(`{"steps":20}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	res, err := n.API().App().Test(req, 30_000)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("POST /api/ion/runs = %d, want 201", res.StatusCode)
	}
	runID := strings.TrimPrefix(res.Header.Get("Location"), "/api/ion/runs/")
	waitTerminal(t, n, runID, 30*time.Second)

	var recs []events.Record
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err = n.Store().ReadStream(t.Context(), events.RunStream(runID), events.Forwards, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) >= 2 && spanNamed(rec.Ended(), "run.Start", "") != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ended := rec.Ended()
	want := func(name, eventType string) sdktrace.ReadOnlySpan {
		t.Helper()
		s := spanNamed(ended, name, eventType)
		if s == nil {
			var names []string
			for _, s := range ended {
				names = append(names, s.Name())
			}
			t.Fatalf("no span %s %s among %v", name, eventType, names)
		}
		if got := s.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("span %s in trace %s, want the caller's", name, got)
		}
		return s
	}
	parent := func(child, p sdktrace.ReadOnlySpan) {
		t.Helper()
		if child.Parent().SpanID() != p.SpanContext().SpanID() {
			t.Errorf("span %s: parent %s, want %s (%s)", child.Name(), child.Parent().SpanID(), p.SpanContext().SpanID(), p.Name())
		}
	}
	request := want("POST /api/ion/runs", "")
	if request.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("request span's parent = %s, want the caller's span", request.Parent().SpanID())
	}
	command := want("actors.CreateRun", "")
	parent(command, request)
	parent(want("events.Append", events.TypeRunRequested), command)
	queue := want("run.Start", "")
	parent(queue, command)
	parent(want("events.Append", events.TypeRunQueued), queue)

	byType := map[string]events.Record{}
	for _, r := range recs {
		byType[events.BaseType(r.Type)] = r
	}
	for typ, s := range map[string]sdktrace.ReadOnlySpan{events.TypeRunRequested: command, events.TypeRunQueued: queue} {
		md := byType[typ].Metadata
		if md.TraceID != s.SpanContext().TraceID().String() || md.SpanID != s.SpanContext().SpanID().String() {
			t.Errorf("%s metadata names span %s/%s, want %s (%s)", typ, md.TraceID, md.SpanID, s.SpanContext().SpanID(), s.Name())
		}
	}
}

// spanNamed finds a span by name and, for appends, the type of the first
// event appended.
func spanNamed(spans []sdktrace.ReadOnlySpan, name, eventType string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.Name() != name {
			continue
		}
		if eventType == "" {
			return s
		}
		for _, a := range s.Attributes() {
			if a.Key == attribute.Key("spectra.event_type") && events.BaseType(a.Value.AsString()) == eventType {
				return s
			}
		}
	}
	return nil
}
