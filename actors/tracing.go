package actors

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/spectra-fab/spectra/events"
)

// Spans of the actor layer, under the API's request spans: a command
// (CreateRun, CancelRun, …), a run actor's handling of it and of its own
// decisions (queue, start, complete, …), and each append those make.
// They reach the actors through the trace context the commands carry in
// their metadata (events.Metadata.TraceID and SpanID), so a run actor, on
// this node or another, continues the request's trace; and each decision
// names its own span in the metadata of the events it appends. Work that
// carries no trace (a run woken after a restart, telemetry steps) makes
// no spans of its own: a trace has one root, the request. Spans go to the
// global tracer provider, a no-op unless the node exports traces.

const tracerName = "github.com/spectra-fab/spectra/actors"

func tracer() trace.Tracer { return otel.Tracer(tracerName) }

// withTrace returns ctx with md's trace context as its remote parent (ctx
// unchanged when md carries none).
func withTrace(ctx context.Context, md events.Metadata) context.Context {
	tid, err := trace.TraceIDFromHex(md.TraceID)
	if err != nil {
		return ctx
	}
	sid, err := trace.SpanIDFromHex(md.SpanID)
	if err != nil {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true}))
}

// startSpan starts a span, child of the span in ctx or else of md's trace
// context, and returns md naming it, so what is appended under it links to
// it. Without either parent it starts none (span is a no-op).
func startSpan(ctx context.Context, md events.Metadata, name string, attrs ...attribute.KeyValue) (context.Context, events.Metadata, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = withTrace(ctx, md)
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return ctx, md, trace.SpanFromContext(ctx)
		}
	}
	ctx, span := tracer().Start(ctx, name, trace.WithAttributes(attrs...))
	if sc := span.SpanContext(); sc.IsValid() {
		md.TraceID, md.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	return ctx, md, span
}

// endSpan ends span, marking it failed when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// tracedStore makes each append under a span a span of its own.
type tracedStore struct{ Store }

func (s tracedStore) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return s.Store.Append(ctx, stream, expected, evs...)
	}
	typ := ""
	if len(evs) > 0 {
		typ = evs[0].Type
	}
	ctx, span := tracer().Start(ctx, "events.Append", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("spectra.stream", stream), attribute.Int("spectra.events", len(evs)),
		attribute.String("spectra.event_type", typ)))
	res, err := s.Store.Append(ctx, stream, expected, evs...)
	if err == nil {
		span.SetAttributes(attribute.Int64("spectra.position", int64(res.Position)),
			attribute.Int64("spectra.revision", int64(res.Revision)))
	}
	endSpan(span, err)
	return res, err
}
