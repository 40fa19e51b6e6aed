package actors

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// Store is what the actor layer needs of the event store.
type Store interface {
	Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error)
	ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error)
}

// Artifacts stores the files runs produce.
type Artifacts interface {
	// Put stores data under key and returns its URI.
	Put(ctx context.Context, key, contentType string, data []byte) (string, error)
}

// ArtifactSet is Artifacts that can also store the artifacts of one job
// together, in one write instead of one per artifact; a run actor uses it
// when its Artifacts has it.
type ArtifactSet interface {
	// PutSet stores arts, each under prefix/name, and returns their URIs
	// in the same order.
	PutSet(ctx context.Context, prefix string, arts []process.Artifact) ([]string, error)
}

// R2R supplies the run-to-run adjustments for a new run of a tool. It may
// be nil (no adjustments).
type R2R interface {
	Adjustments(ctx context.Context, orgID string, kind process.Kind, toolID string, recipe json.RawMessage) (adj map[string]float64, basis map[string]any, err error)
}

// EngineFactory validates recipes of one process kind and builds engines
// for them.
type EngineFactory interface {
	// Validate returns a *process.ValidationError for an invalid recipe.
	Validate(recipe json.RawMessage) error
	// New builds the engine of a run.
	New(recipe json.RawMessage, opts process.Options) (process.Engine, error)
}

// Config tunes the actor layer. Zero values take the defaults.
type Config struct {
	// TimeScale maps process time to wall time: 1 is real time, 100 the
	// seed's demo speed, 0 as fast as possible.
	TimeScale float64
	// Node names this node in event metadata.
	Node string
	// QueueLimit is the default number of runs a queue admits at once (4).
	QueueLimit int
	// QueueLimits overrides the limit per queue name ("ion", "rtp",
	// "ion/TOOL-1").
	QueueLimits map[string]int
	// MaxRetries is the number of automatic retries after transient faults (3).
	MaxRetries int
	// RetryBase and RetryCap bound the exponential back-off between
	// automatic retries, in process time (60 s and 10 min).
	RetryBase, RetryCap time.Duration
	// SoftLimit and HardLimit are the run time limits in process time
	// (2 h and 3 h): the soft one records a warning, the hard one fails the
	// run.
	SoftLimit, HardLimit time.Duration
	// AllowFaultInjection lets recipes carry simulate_fault.
	AllowFaultInjection bool
	// StoreTimeout bounds each store call (5 s).
	StoreTimeout time.Duration
	// RequestTimeout bounds a command's round trip to its actor (5 s).
	RequestTimeout time.Duration
	// Slots, in cluster mode, makes queue limits cluster-wide (slots.go).
	Slots  Slots
	Logger *slog.Logger
	// SealKey, when set, signs the seal of each run's terminal event
	// (events.Chain).
	SealKey ed25519.PrivateKey
}

func (c Config) withDefaults() Config {
	if c.QueueLimit <= 0 {
		c.QueueLimit = 4
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 60 * time.Second
	}
	if c.RetryCap <= 0 {
		c.RetryCap = 10 * time.Minute
	}
	if c.SoftLimit <= 0 {
		c.SoftLimit = 2 * time.Hour
	}
	if c.HardLimit <= 0 {
		c.HardLimit = 3 * time.Hour
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Node == "" {
		c.Node = "node-1"
	}
	return c
}

func (c Config) limit(queue string) int {
	if n, ok := c.QueueLimits[queue]; ok && n > 0 {
		return n
	}
	return c.QueueLimit
}

// wall converts a process-time duration to wall time at the configured
// scale (0: as fast as possible, so no wait).
func (c Config) wall(processSeconds float64) time.Duration {
	if c.TimeScale <= 0 {
		return 0
	}
	return time.Duration(processSeconds / c.TimeScale * float64(time.Second))
}

// policy is the run aggregate's policy under this configuration.
func (c Config) policy() run.Policy {
	return run.Policy{MaxRetries: c.MaxRetries, RetryBase: c.RetryBase, RetryCap: c.RetryCap,
		SoftLimit: c.SoftLimit, HardLimit: c.HardLimit}
}
