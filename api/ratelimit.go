package api

import (
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"
)

// RateLimits caps requests per principal (organisation and user, or API
// key) in a fixed window. Zero fields take the defaults; a negative one
// turns that limit off.
type RateLimits struct {
	// CreateRuns caps POST /api/ion/runs and /api/rtp/runs together
	// (default 100 per window).
	CreateRuns int
	// Reads caps GET requests (default 1000 per window).
	Reads int
	// Commands caps the other commands: cancel, pause, resume, retry, API
	// keys (default 100 per window).
	Commands int
	// Auth caps token exchanges and refreshes per client address (default
	// 60 per window): they are where credentials get guessed.
	Auth int
	// AuthFailures caps failed authentications per client address
	// (default 20 per window); over it, the address is refused with 429
	// before its credentials are verified.
	AuthFailures int
	// Window is the limits' window (default one minute).
	Window time.Duration
}

// Default rate limits (the specification).
const (
	defaultCreateRunsLimit = 100
	defaultReadsLimit      = 1000
	defaultCommandsLimit   = 100
	defaultAuthLimit       = 60
)

func (r RateLimits) withDefaults() RateLimits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&r.CreateRuns, defaultCreateRunsLimit)
	def(&r.Reads, defaultReadsLimit)
	def(&r.Commands, defaultCommandsLimit)
	def(&r.Auth, defaultAuthLimit)
	def(&r.AuthFailures, defaultAuthFailuresLimit)
	if r.Window <= 0 {
		r.Window = time.Minute
	}
	return r
}

// limiters holds one Fiber limiter per class of request, shared by the
// routes of that class.
type limiters struct {
	create, read, command, auth fiber.Handler
}

func (s *Server) newLimiters() limiters {
	rl := s.cfg.RateLimits
	byPrincipal := func(class string) func(*fiber.Ctx) string {
		return func(c *fiber.Ctx) string {
			p := principal(c)
			return class + "\x00" + p.OrgID + "\x00" + p.UserID
		}
	}
	build := func(max int, key func(*fiber.Ctx) string) fiber.Handler {
		if max < 0 {
			return func(c *fiber.Ctx) error { return c.Next() }
		}
		return limiter.New(limiter.Config{
			Max:          max,
			Expiration:   rl.Window,
			KeyGenerator: key,
			// The limiter sets Retry-After before this runs; the error
			// goes through the one error handler.
			LimitReached: func(c *fiber.Ctx) error {
				return &Error{Code: CodeRateLimited,
					Message: "rate limit exceeded; retry after " + string(c.Response().Header.Peek(fiber.HeaderRetryAfter)) + " s"}
			},
			Storage: newLimitStore(),
		})
	}
	return limiters{
		create:  build(rl.CreateRuns, byPrincipal("create")),
		read:    build(rl.Reads, byPrincipal("read")),
		command: build(rl.Commands, byPrincipal("command")),
		auth:    build(rl.Auth, func(c *fiber.Ctx) string { return "auth\x00" + c.IP() }),
	}
}

// limiterFor picks the limiter of a route.
func (s *Server) limiterFor(method string, perm Permission) fiber.Handler {
	switch {
	case perm == PermIonCreateRun || perm == PermRTPCreateRun:
		if method == fiber.MethodPost {
			return s.limits.create
		}
		fallthrough
	case method == fiber.MethodGet || method == fiber.MethodHead:
		return s.limits.read
	default:
		return s.limits.command
	}
}

// limitAuth limits token exchanges and refreshes per client address.
func (s *Server) limitAuth(c *fiber.Ctx) error { return s.limits.auth(c) }

// limitStore is the limiter's storage: a map whose entries expire, swept
// as it grows. Fiber's default storage starts a goroutine per limiter that
// never ends; this one starts none.
type limitStore struct {
	mu    sync.Mutex
	data  map[string]limitEntry
	sweep int // sweep when len(data) reaches this
}

type limitEntry struct {
	val []byte
	exp time.Time
}

var _ fiber.Storage = (*limitStore)(nil)

func newLimitStore() *limitStore { return &limitStore{data: map[string]limitEntry{}, sweep: 1024} }

func (m *limitStore) Get(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.data[key]
	if !ok || (!e.exp.IsZero() && time.Now().After(e.exp)) {
		return nil, nil
	}
	return e.val, nil
}

func (m *limitStore) Set(key string, val []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if len(m.data) >= m.sweep {
		for k, e := range m.data {
			if !e.exp.IsZero() && now.After(e.exp) {
				delete(m.data, k)
			}
		}
		m.sweep = max(1024, 2*len(m.data))
	}
	var exp time.Time
	if ttl > 0 {
		exp = now.Add(ttl)
	}
	m.data[key] = limitEntry{val: append([]byte(nil), val...), exp: exp}
	return nil
}

func (m *limitStore) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, key)
	return nil
}

func (m *limitStore) Reset() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = map[string]limitEntry{}
	return nil
}

func (m *limitStore) Close() error { return nil }
