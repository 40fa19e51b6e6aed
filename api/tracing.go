package api

import (
	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the API's spans' instrumentation scope.
const tracerName = "github.com/spectra-fab/spectra/api"

// traced starts a span for each request, continuing the caller's trace
// when it sends a W3C traceparent, and hands it down in the request's
// context: commands copy its ids into the metadata of the events they
// cause (Server.metadata), so a run's events link to the request behind
// them. Spans go to the global tracer provider, a no-op unless the node
// was started with an OTLP endpoint; the ids of a caller's trace are
// carried either way.
func (s *Server) traced(c *fiber.Ctx) error {
	ctx := propagation.TraceContext{}.Extract(c.UserContext(), headerCarrier{c})
	ctx, span := otel.Tracer(tracerName).Start(ctx, c.Method(), trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	c.SetUserContext(ctx)
	err := c.Next()
	span.SetName(c.Method() + " " + c.Route().Path)
	span.SetAttributes(attribute.String("http.request.method", c.Method()),
		attribute.String("http.route", c.Route().Path), attribute.String("spectra.request_id", requestID(c)))
	if err != nil {
		span.SetStatus(codes.Error, "request failed") // the error handler answers it
	} else {
		span.SetAttributes(attribute.Int("http.response.status_code", c.Response().StatusCode()))
	}
	return err
}

// traceIDs are the ids of the span in a request's context, "" when none.
func traceIDs(c *fiber.Ctx) (traceID, spanID string) {
	sc := trace.SpanContextFromContext(c.UserContext())
	if !sc.IsValid() {
		return "", ""
	}
	return sc.TraceID().String(), sc.SpanID().String()
}

// headerCarrier reads a request's headers for the propagator.
type headerCarrier struct{ c *fiber.Ctx }

func (h headerCarrier) Get(key string) string { return h.c.Get(key) }
func (h headerCarrier) Set(string, string)    {}
func (h headerCarrier) Keys() []string        { return []string{"traceparent", "tracestate"} }
