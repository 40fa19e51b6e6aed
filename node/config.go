package node

import (
	"log/slog"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/process"
)

// Config is a node's configuration. cmd/spectra fills it from flags and
// SPECTRA_* environment variables.
type Config struct {
	// HTTPAddr is where the API listens (":8003"); empty = no listener
	// (tests use Node.API().App()).
	HTTPAddr string
	// DataDir holds the embedded NATS server's files.
	DataDir string
	// EventStore is "jetstream" (default) or a kurrentdb:// / esdb://
	// connection string.
	EventStore string
	// NATSURL is an external NATS server; empty embeds one.
	NATSURL string
	// NATSListen, when set, makes the embedded NATS server listen on this
	// address (for tools and other nodes).
	NATSListen string
	// NoSync trades the fsync of every append for speed: an acknowledged
	// append then survives a process crash but not a power loss.
	NoSync bool
	// JWTSecret signs and verifies access tokens.
	JWTSecret []byte
	// TimeScale: 1 real time, 100 the seed's demo speed, 0 as fast as
	// possible.
	TimeScale float64
	// Node names this node in event metadata ("node-1").
	Node string
	// AllowFaultInjection lets recipes carry simulate_fault.
	AllowFaultInjection bool
	// QueueLimit is the default concurrency per queue (4).
	QueueLimit int
	// SoftLimit, HardLimit, RetryBase, RetryCap: see actors.Config.
	SoftLimit, HardLimit, RetryBase, RetryCap time.Duration
	// ArtifactTTL is how long finished runs' artifacts are kept (7 days).
	ArtifactTTL time.Duration
	// ReadYourWritesTimeout bounds how long reads wait for projections.
	ReadYourWritesTimeout time.Duration
	// JWKSFile, when set, adds RS256/EdDSA verification of an identity
	// provider's tokens by kid (HS256 with JWTSecret always works).
	JWKSFile string
	// RateLimits caps requests per principal (zero fields: SPEC.md's
	// defaults).
	RateLimits api.RateLimits
	// AccessTokenTTL and RefreshTokenTTL are the lifetimes of the tokens
	// POST /api/auth/token issues (zero: the API's defaults).
	AccessTokenTTL, RefreshTokenTTL time.Duration
	// SPCBaseline is how many first points of a chart fix its limits (20).
	SPCBaseline int
	// Engines overrides the process engines (tests); nil = actors.Engines().
	Engines map[process.Kind]actors.EngineFactory
	Logger  *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.EventStore == "" {
		c.EventStore = "jetstream"
	}
	if c.Node == "" {
		c.Node = "node-1"
	}
	if c.ArtifactTTL <= 0 {
		c.ArtifactTTL = 7 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Engines == nil {
		c.Engines = actors.Engines()
	}
	return c
}
