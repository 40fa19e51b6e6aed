package api

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/spectra-fab/spectra/events"
)

// Headers of the API.
const (
	HeaderRequestID     = "X-Request-ID"
	HeaderCorrelationID = "X-Correlation-ID"
	HeaderIdempotency   = "Idempotency-Key"
	// HeaderPosition is the global log position a response reflects: for a
	// command, the position of what it appended; for a read, a position the
	// read models had reached when the read began.
	HeaderPosition = "X-Spectra-Position"
	// HeaderMinPosition asks a read to wait (bounded) until the read models
	// have reached that position.
	HeaderMinPosition = "X-Min-Position"
	// HeaderStale says the read models had not reached the position asked
	// for (or the command's position) within the timeout.
	HeaderStale = "X-Spectra-Stale"
)

// Keys of fiber.Ctx locals.
const (
	localRequestID = "spectra.request_id"
	localRoute     = "spectra.route"
	localPrincipal = "spectra.principal"
	localDenied    = "spectra.denied" // Principal a refused credential belonged to
)

// withRequestID honours a sane X-Request-ID or makes one, echoes it and puts
// it in the request's context.
func (s *Server) withRequestID(c *fiber.Ctx) error {
	id := c.Get(HeaderRequestID)
	if !validRequestID(id) {
		id = uuid.NewString()
	}
	c.Locals(localRequestID, id)
	c.Set(HeaderRequestID, id)
	c.SetUserContext(NewContextWithRequestID(c.UserContext(), id))
	return c.Next()
}

// validRequestID accepts ids of up to 128 characters from a conservative
// set, so a client's id cannot inject anything into logs or headers.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '-', r == '_', r == '.', r == ':', r == '/', r == '+', r == '=':
		default:
			return false
		}
	}
	return true
}

// requestID returns the request's id, making one when the request never
// went through withRequestID (errors Fiber raises before routing).
func requestID(c *fiber.Ctx) string {
	if id, ok := c.Locals(localRequestID).(string); ok {
		return id
	}
	id := uuid.NewString()
	c.Locals(localRequestID, id)
	c.Set(HeaderRequestID, id)
	return id
}

// markRoute records the matched route pattern, the label of metrics and
// access-log lines.
func markRoute(path string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Locals(localRoute, path)
		return c.Next()
	}
}

// observe writes errors through the error handler, so that the final status
// is known, then counts the request and logs it.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		if herr := s.handleError(c, err); herr != nil {
			s.log.Error("write error response", slog.Any("error", herr))
			c.Status(fiber.StatusInternalServerError)
		}
	}
	elapsed := time.Since(start)
	status := c.Response().StatusCode()
	route, _ := c.Locals(localRoute).(string)
	if route == "" {
		route = "unmatched"
	}
	s.metrics.observe(c.Method(), route, status, elapsed)

	level := slog.LevelInfo
	switch route {
	case "/healthz", "/readyz", "/metrics":
		level = slog.LevelDebug
	}
	if status >= 500 {
		level = slog.LevelWarn
	}
	ctx := c.UserContext()
	if !s.log.Enabled(ctx, level) {
		return nil
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestID(c)),
		slog.String("method", c.Method()),
		slog.String("route", route),
		slog.String("path", c.Path()),
		slog.Int("status", status),
		slog.Duration("latency", elapsed),
	}
	if p, ok := PrincipalFromContext(ctx); ok {
		attrs = append(attrs, slog.Any("principal", p))
	}
	s.log.LogAttrs(ctx, level, "http request", attrs...)
	return nil
}

// guard is the chain in front of every route that needs a permission:
// denied attempts go to the audit trail; the caller is authenticated, held
// to its rate limit, authorised; ids and bodies are checked; and reads
// honour X-Min-Position.
func (s *Server) guard(method string, perm Permission) []fiber.Handler {
	chain := []fiber.Handler{s.auditDenials, s.throttleAuth, s.authenticate, s.limiterFor(method, perm), s.authorize(perm),
		s.checkRequest}
	if method != fiber.MethodGet && method != fiber.MethodHead {
		chain = append(chain, s.storeUp)
	}
	return append(chain, s.readYourWrites)
}

// storeUp answers a command 503 with Retry-After while the event store is
// unreachable: nothing could be recorded, and the client learns it now
// rather than after a timeout.
func (s *Server) storeUp(c *fiber.Ctx) error {
	if s.storeDown != nil {
		if err := s.storeDown(); err != nil {
			return &Error{Code: CodeUnavailable, Message: "the event store is unreachable; retry later", Err: err}
		}
	}
	return c.Next()
}

// authenticate verifies the bearer token (HS256, or RS256/EdDSA with a
// JWKS) or the X-API-Key and puts the principal in the request's context.
// A token of a revoked family, a revoked jti or a revoked key is refused.
func (s *Server) authenticate(c *fiber.Ctx) error {
	key := c.Get(HeaderAPIKey)
	tok, hasBearer := bearerToken(c.Get(fiber.HeaderAuthorization))
	var (
		p   Principal
		err error
	)
	switch {
	case key != "" && c.Get(fiber.HeaderAuthorization) != "":
		return errUnauthorized("send one credential: a bearer token or an api key", nil)
	case key != "":
		p, err = s.verifyAPIKey(key)
	case hasBearer:
		p, err = s.verifier.verify(tok)
		if err == nil {
			err = s.verifySession(p)
		}
	default:
		return errUnauthorized("missing bearer token or api key", nil)
	}
	if err != nil {
		s.deniedAs(c, p)
		return err
	}
	s.setPrincipal(c, p)
	return c.Next()
}

// setPrincipal makes p the request's principal.
func (s *Server) setPrincipal(c *fiber.Ctx, p Principal) {
	c.Locals(localPrincipal, p)
	c.SetUserContext(NewContextWithPrincipal(c.UserContext(), p))
}

// deniedAs remembers who a refused credential belonged to, when that is
// known for sure (a good signature with an expired date, a real key with a
// wrong secret), so the refusal is audited in that organisation.
func (s *Server) deniedAs(c *fiber.Ctx, p Principal) {
	if validOrgID(p.OrgID) {
		c.Locals(localDenied, p)
	}
}

// authorize refuses principals whose role lacks perm.
func (s *Server) authorize(perm Permission) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := principal(c)
		if !p.Role.Can(perm) {
			return errForbidden("role " + string(p.Role) + " lacks permission " + string(perm))
		}
		return c.Next()
	}
}

// principal returns the authenticated principal of a request; only call it
// behind authenticate.
func principal(c *fiber.Ctx) Principal {
	p, _ := c.Locals(localPrincipal).(Principal)
	return p
}

// readYourWrites waits, bounded by the configured timeout, until the read
// models reach the X-Min-Position the client asks for, then stamps the
// response with the position they are at. A timeout still answers, marked
// X-Spectra-Stale.
func (s *Server) readYourWrites(c *fiber.Ctx) error {
	if h := c.Get(HeaderMinPosition); h != "" {
		minPos, err := strconv.ParseUint(h, 10, 64)
		if err != nil {
			return invalid(HeaderMinPosition, h, "an unsigned integer", "not a log position")
		}
		if !s.waitFor(c.UserContext(), minPos) {
			c.Set(HeaderStale, "true")
		}
	}
	// Taken before the read: the read reflects at least this position.
	c.Set(HeaderPosition, strconv.FormatUint(s.q.Position(), 10))
	return c.Next()
}

// waitFor waits until the read models have applied pos, at most the
// configured timeout, and reports whether they have.
func (s *Server) waitFor(ctx context.Context, pos uint64) bool {
	if pos == 0 || s.q.Position() >= pos {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadYourWritesTimeout)
	defer cancel()
	if err := s.q.WaitFor(ctx, pos); err != nil {
		s.log.DebugContext(ctx, "read models behind", slog.Uint64("position", pos), slog.Any("error", err))
		return false
	}
	return true
}

// accepted stamps a command's response with its position, after waiting
// (bounded) for the read models to reach it, so that a GET right after the
// command sees its effect.
func (s *Server) accepted(c *fiber.Ctx, pos uint64) {
	if !s.waitFor(c.UserContext(), pos) {
		c.Set(HeaderStale, "true")
	}
	c.Set(HeaderPosition, strconv.FormatUint(pos, 10))
}

// metadata is the event metadata of a command from this request.
func (s *Server) metadata(c *fiber.Ctx) events.Metadata {
	p := principal(c)
	rid := requestID(c)
	corr := c.Get(HeaderCorrelationID)
	if !validRequestID(corr) {
		corr = rid
	}
	traceID, spanID := traceIDs(c)
	return events.Metadata{
		OrgID:         p.OrgID,
		UserID:        p.UserID,
		Role:          string(p.Role),
		RequestID:     rid,
		CorrelationID: corr,
		Node:          s.cfg.Node,
		TraceID:       traceID,
		SpanID:        spanID,
	}
}

// securityHeaders makes browsers take responses for what they are:
// nosniff everywhere, and a Content-Security-Policy on every response that
// does not set its own (the dashboard does), so that an artifact (an SVG
// a run produced) opened in a browser can run no script and load nothing.
func (s *Server) securityHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	err := c.Next()
	if len(c.Response().Header.Peek(fiber.HeaderContentSecurityPolicy)) == 0 {
		csp := "default-src 'none'; frame-ancestors 'none'; sandbox"
		if strings.HasPrefix(string(c.Response().Header.ContentType()), "image/svg+xml") {
			csp = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox"
		}
		c.Set(fiber.HeaderContentSecurityPolicy, csp)
	}
	return err
}
