package api

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

// Commands is what the API asks of the actor layer. Every command carries
// the caller's metadata; the actor layer scopes it to Meta.OrgID.
type Commands interface {
	// CreateRun validates the recipe and creates a queued run. Returns a
	// *process.ValidationError for an invalid recipe,
	// actors.ErrFaultInjectionDisabled, or actors.ErrUnavailable.
	CreateRun(ctx context.Context, c actors.CreateRun) (actors.Accepted, error)
	// CancelRun, PauseRun, ResumeRun and RetryJob return actors.ErrNotFound
	// for a run not in the caller's organisation, an *actors.StateError
	// (matching actors.ErrInvalidState) when the run's state forbids the
	// command, or actors.ErrUnavailable.
	CancelRun(ctx context.Context, c actors.RunCommand) (actors.Accepted, error)
	PauseRun(ctx context.Context, c actors.RunCommand) (actors.Accepted, error)
	ResumeRun(ctx context.Context, c actors.RunCommand) (actors.Accepted, error)
	RetryJob(ctx context.Context, c actors.RunCommand) (actors.Accepted, error)
}

// Queries is what the API reads from the projections.
type Queries interface {
	// Run returns a run of organisation orgID, or projections.ErrNotFound
	// (also for another organisation's run).
	Run(ctx context.Context, orgID, runID string) (projections.Run, error)
	// Runs returns a page of runs matching f and the total number matching.
	Runs(ctx context.Context, f projections.RunFilter) ([]projections.Run, int, error)
	// Job returns a job of organisation orgID, or projections.ErrNotFound.
	Job(ctx context.Context, orgID, jobID string) (projections.Job, error)
	// Jobs returns a page of jobs matching f and the total number matching.
	Jobs(ctx context.Context, f projections.JobFilter) ([]projections.Job, int, error)
	// WaitFor blocks until the read models have applied the event at
	// position, or ctx ends (returning ctx.Err()).
	WaitFor(ctx context.Context, position uint64) error
	// Position is the global position the read models have applied.
	Position() uint64
}

// EventReader reads the event log. Any events.Store is one.
type EventReader interface {
	// ReadStream: see events.Store. Returns events.ErrNotFound when the
	// stream does not exist.
	ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error)
}

var _ EventReader = events.Store(nil)

// Config configures the API server.
type Config struct {
	// JWTSecret verifies HS256 access tokens. Required.
	JWTSecret Secret
	// Logger receives the access log and server errors (default: slog.Default()).
	Logger *slog.Logger
	// Node names this node in event metadata.
	Node string
	// ReadYourWritesTimeout bounds how long a command waits for the read
	// models to reach what it appended, and how long a read waits for
	// X-Min-Position (default 2 s).
	ReadYourWritesTimeout time.Duration
	// AllowFaultInjection allows simulate_fault in run recipes.
	AllowFaultInjection bool
	// BodyLimit caps request bodies in bytes (default 1 MiB).
	BodyLimit int
	// ReadTimeout, WriteTimeout and IdleTimeout are the HTTP server's
	// (defaults 30 s, 30 s, 120 s).
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ReadyTimeout bounds Deps.Ready in /readyz (default 2 s).
	ReadyTimeout time.Duration
	// JWKS, when set, verifies RS256 and EdDSA access tokens of an identity
	// provider by kid (see OpenJWKS); HS256 tokens signed with JWTSecret
	// stay valid alongside.
	JWKS *JWKS
	// JWTIssuer and JWTAudience, when set, are required of the identity
	// provider's tokens (iss, and one of aud); node requires the audience
	// with a JWKS.
	JWTIssuer, JWTAudience string
	// MaxTokenLifetime caps an access token's exp − iat (default 24 h).
	MaxTokenLifetime time.Duration
	// AccessTokenTTL and RefreshTokenTTL are the lifetimes of the tokens
	// /api/auth/token and /api/auth/refresh issue (defaults 15 min, 24 h).
	AccessTokenTTL, RefreshTokenTTL time.Duration
	// RateLimits caps requests per principal (defaults: the specification's).
	RateLimits RateLimits
	// CommandTimeout bounds every command (default 10 s): past it the
	// client gets 504 naming what to check (a create's idempotency key to
	// retry with, or the run, job, lot, … to read before repeating it).
	CommandTimeout time.Duration
	// DeniedWindow is the window over which denied attempts of one
	// principal from one address make one AccessDenied event with a count
	// (default one minute).
	DeniedWindow time.Duration
	// MaxJSONDepth caps how deeply request bodies nest (default 32).
	MaxJSONDepth int
	// Stream tunes the WebSocket streams (stream.go).
	Stream StreamConfig
}

// LogValue logs the configuration without its secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("node", c.Node),
		slog.Duration("read_your_writes_timeout", c.ReadYourWritesTimeout),
		slog.Bool("allow_fault_injection", c.AllowFaultInjection),
		slog.Int("body_limit", c.BodyLimit))
}

// Deps are the services the API is a front for.
type Deps struct {
	Commands Commands // required
	Queries  Queries  // required
	// Store is the event log, read for job logs (nil: logs answer 503).
	Store EventReader
	// Ready reports whether the node can serve (nil: always ready).
	Ready func(ctx context.Context) error
	// StoreDown reports why the event store cannot take appends now (nil:
	// it can). Commands then answer 503 with Retry-After at once instead
	// of waiting out their deadline.
	StoreDown func() error
	// Registerer receives the HTTP metrics and Gatherer serves /metrics.
	// When both are nil the server uses a registry of its own with the Go
	// and process collectors; when only Registerer is set and it is also a
	// Gatherer (a *prometheus.Registry), it serves /metrics too.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Events appends API keys, token families and denied attempts (nil:
	// the credential endpoints answer 503 and denials are only logged).
	Events EventAppender
	// Credentials verifies API keys and refresh tokens (nil: refused).
	Credentials Credentials
	// Audit serves GET /api/audit (nil: it answers 503).
	Audit AuditLog
	// Artifacts streams stored run artifacts (nil: artifact downloads
	// answer 404).
	Artifacts ArtifactReader
	// Views serves the SPC charts and R2R state (nil: a node without them has no charts).
	Views Views
	// Tunings records controller tunings (nil: tunings are answered but
	// not recorded).
	Tunings TuningRecorder
	// Streams is the event log the WebSocket streams replay and follow
	// (nil: they answer 503).
	Streams EventLog
	// Fab serves the recipe library, lots and schedules, and FabLists
	// lists them (nil: those endpoints answer 503, and runs cannot
	// reference library recipes).
	Fab      Fab
	FabLists FabLists
	// Verifier answers GET /api/runs/{id}/verify (nil: it answers 503).
	Verifier RunVerifier
	// WhatIf answers POST /api/r2r/what-if (nil: it answers 503).
	WhatIf WhatIfReplayer
	// Tools answers GET /api/tools/{id}/timeline (nil: it answers 503).
	Tools ToolTimelines
}

// Route is one endpoint: its method, its Fiber path and the permission it
// needs ("" for the public operational endpoints). The route table is what
// the router, the RBAC tests and the OpenAPI document all read.
type Route struct {
	Method     string
	Path       string
	Permission Permission
	Summary    string
}

// Server is the Spectra HTTP API.
type Server struct {
	cfg       Config
	cmd       Commands
	q         Queries
	store     EventReader
	artifacts ArtifactReader
	tunings   TuningRecorder
	ready     func(context.Context) error
	log       *slog.Logger
	app       *fiber.App
	routes    []Route
	metrics   *httpMetrics
	views     Views
	verifier  verifier
	events    EventAppender
	creds     Credentials
	audit     AuditLog
	limits    limiters
	streams   *streams
	fab       Fab
	fabLists  FabLists
	storeDown func() error
	authFails *failThrottle // failed authentications per address (denials.go)
	denied    *denialLog    // AccessDenied, aggregated (denials.go)

	runVerifier RunVerifier
	whatIf      WhatIfReplayer
	tools       ToolTimelines
}

// Default configuration values.
const (
	defaultReadYourWritesTimeout = 2 * time.Second
	defaultBodyLimit             = 1 << 20
	defaultReadyTimeout          = 2 * time.Second
)

// New builds the API server. It panics when a required dependency or the
// JWT secret is missing: that is a wiring mistake.
func New(cfg Config, d Deps) *Server {
	if d.Commands == nil || d.Queries == nil {
		panic("api.New: nil Commands or Queries")
	}
	if len(cfg.JWTSecret) == 0 {
		panic("api.New: empty JWT secret")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReadYourWritesTimeout <= 0 {
		cfg.ReadYourWritesTimeout = defaultReadYourWritesTimeout
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = defaultBodyLimit
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = defaultReadyTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 10 * time.Second
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = defaultAccessTokenTTL
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = defaultRefreshTokenTTL
	}
	if cfg.MaxJSONDepth <= 0 {
		cfg.MaxJSONDepth = defaultMaxJSONDepth
	}
	cfg.RateLimits = cfg.RateLimits.withDefaults()
	s := &Server{
		cfg:       cfg,
		cmd:       d.Commands,
		q:         d.Queries,
		store:     d.Store,
		artifacts: d.Artifacts,
		tunings:   d.Tunings,
		ready:     d.Ready,
		storeDown: d.StoreDown,
		log:       cfg.Logger,
		verifier: verifier{secret: cfg.JWTSecret, jwks: cfg.JWKS, issuer: cfg.JWTIssuer, audience: cfg.JWTAudience,
			maxLifetime: cfg.MaxTokenLifetime, cache: newTokenCache(tokenCacheSize)},
		events:   d.Events,
		creds:    d.Credentials,
		audit:    d.Audit,
		fab:      d.Fab,
		fabLists: d.FabLists,

		runVerifier: d.Verifier,
		whatIf:      d.WhatIf,
		tools:       d.Tools,
	}
	s.limits = s.newLimiters()
	if cfg.DeniedWindow <= 0 {
		cfg.DeniedWindow = defaultDeniedWindow
		s.cfg.DeniedWindow = cfg.DeniedWindow
	}
	s.authFails = newFailThrottle(cfg.RateLimits.AuthFailures, cfg.RateLimits.Window)
	if d.Events != nil {
		s.denied = &denialLog{window: cfg.DeniedWindow, log: cfg.Logger, open: map[denialKey]*denialWindow{},
			append: func(ctx context.Context, stream string, ev events.Event) (uint64, error) {
				res, err := d.Events.Append(ctx, stream, events.ExpectAny, ev)
				return res.Position, err
			}}
	}
	s.views = d.Views
	s.metrics = newHTTPMetrics(d.Registerer, d.Gatherer)
	s.app = fiber.New(fiber.Config{
		AppName:               "spectra",
		ErrorHandler:          s.handleError,
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		DisableStartupMessage: true,
		// Values from the request (params, headers) outlive the handler:
		// they go into commands that actors keep. Immutable makes Fiber
		// copy them instead of lending its buffers.
		Immutable: true,
	})
	s.app.Use(s.withRequestID, s.observe, s.securityHeaders, s.traced)
	s.registerOpsRoutes()
	s.registerIonRoutes()
	s.registerRTPRoutes()
	s.registerJobRoutes()
	s.registerViewRoutes()
	s.registerAuthRoutes()
	s.registerAuditRoutes()
	s.registerStreamRoutes(d.Streams)
	s.registerProvenanceRoutes()
	s.registerWhatIfRoutes()
	s.registerToolRoutes()
	s.registerFabRoutes()
	return s
}

// App returns the Fiber app, for tests (app.Test) and for mounting.
func (s *Server) App() *fiber.App { return s.app }

// Routes returns a copy of the route table.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// Listen serves HTTP on addr until Shutdown.
func (s *Server) Listen(addr string) error { return s.app.Listen(addr) }

// Serve serves HTTP on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections and waits for open requests to end,
// until ctx ends. Open WebSocket streams are closed first, with 1001.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeStreams(ctx)
	err := s.app.ShutdownWithContext(ctx)
	if s.denied != nil {
		s.denied.close() // the counts of open windows, recorded now
	}
	return err
}

// handle adds a route to the router and to the route table. A route with a
// permission is authenticated and authorised before its handler runs, and
// honours X-Min-Position (read-your-writes). Routes are registered one by
// one, rather than behind a group middleware, so that an unknown path is
// a 404 whether or not the request carries a token.
func (s *Server) handle(method, path string, perm Permission, summary string, h fiber.Handler) {
	var mw []fiber.Handler
	if perm != "" {
		mw = s.guard(method, perm) // middleware.go
	}
	s.route(method, path, perm, summary, mw, h)
}

// route adds a route with the middleware mw before its handler.
func (s *Server) route(method, path string, perm Permission, summary string, mw []fiber.Handler, h fiber.Handler) {
	s.routes = append(s.routes, Route{Method: method, Path: path, Permission: perm, Summary: summary})
	chain := append([]fiber.Handler{markRoute(path)}, mw...)
	s.app.Add(method, path, append(chain, h)...)
}
