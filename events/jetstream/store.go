package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
)

var _ events.Store = (*Store)(nil)

// Options configure a Store on an existing connection.
type Options struct {
	// Stream is the JetStream stream holding the log; default
	// "SPECTRA_EVENTS".
	Stream string
	// Replicas of the stream: 1 (default) embedded, 3 on a cluster.
	Replicas int
	// Logger receives the store's warnings; nil discards them.
	Logger *slog.Logger
	// DuplicateWindow is how long JetStream remembers event ids to drop
	// a re-sent event (default 2 minutes). Retries recognised by reading
	// the stream back do not depend on it.
	DuplicateWindow time.Duration
	// ReadConn, when set, opens a second connection for history reads
	// and subscriptions; the store closes it. The server answers a
	// connection's direct gets in line, in order, so a replay's batch
	// read on the appends' connection holds every append behind it.
	ReadConn func() (*nats.Conn, error)
	// GroupCommit publishes appends to different streams that arrive
	// while a commit is in flight as one atomic batch (groupcommit.go):
	// on a single server with sync always, one fsync for the group
	// instead of one per append. For a stream of one replica; ignored
	// with more (a clustered batch goes through Raft, where it saves
	// nothing measured yet).
	GroupCommit bool
	// NoOrgIndex turns the org index off (orgindex.go): an
	// organisation's reads are then filtered by the server, at a cost
	// that follows the whole log. For comparison, and where its memory (8
	// bytes per message) is not to be spent.
	NoOrgIndex bool
}

// DefaultStream is the JetStream stream of the log unless Options say
// otherwise.
const DefaultStream = "SPECTRA_EVENTS"

// maxBatch is the most events one Append may carry: JetStream's default
// limit of an atomic batch.
const maxBatch = 1000

// Store is the event store on JetStream. It is safe for concurrent use.
type Store struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	rjs    jetstream.JetStream // reads and subscriptions: js, or on Options.ReadConn
	rnc    *nats.Conn          // Options.ReadConn's connection, closed by Close
	stream jetstream.Stream
	name   string
	log    *slog.Logger

	// life ends when the store closes; subscriptions derive from it.
	life context.Context
	kill context.CancelFunc

	tails tailCache
	stats storeStats

	// idx is the org index (orgindex.go), started by the first read it
	// can serve.
	idxOnce sync.Once
	idx     atomic.Pointer[orgIndex]
	gc      *committer // nil: each append is published on its own
	noIdx   bool

	closeOnce sync.Once
	srv       *Server // the embedded server, when Open started one
	owned     func()  // closes what Open created (connection, server)
}

// New opens the store on nc, creating or updating its stream. The caller
// keeps ownership of nc.
func New(ctx context.Context, nc *nats.Conn, o Options) (*Store, error) {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:        o.Stream,
		Description: "Spectra event log: subjects ev.<category>.<stream id>.<organisation>; one message per append; position = sequence×1000 + index",
		Subjects:    []string{subjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
		// The log is append-only: nothing may remove an event, which is
		// also what keeps a revision's sequence fixed forever.
		DenyDelete: true,
		DenyPurge:  true,
		// Direct gets serve the reads (last event of a stream, batches).
		AllowDirect: true,
		// Appends that need several messages are atomic batches.
		AllowAtomicPublish: true,
	}
	if _, err := migrateLayout(ctx, js, cfg, o.Logger); err != nil {
		return nil, fmt.Errorf("open event store: stream %s: %w", o.Stream, err)
	}
	st, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open event store: stream %s: %w", o.Stream, err)
	}
	s := &Store{nc: nc, js: js, rjs: js, stream: st, name: o.Stream, log: o.Logger, tails: tailCache{m: map[string]tail{}}, noIdx: o.NoOrgIndex}
	if o.ReadConn != nil {
		if s.rnc, err = o.ReadConn(); err != nil {
			return nil, fmt.Errorf("open event store: read connection: %w", err)
		}
		if s.rjs, err = jetstream.New(s.rnc); err != nil {
			s.rnc.Close()
			return nil, fmt.Errorf("open event store: read connection: %w", err)
		}
	}
	s.life, s.kill = context.WithCancel(context.Background())
	if o.GroupCommit && o.Replicas == 1 {
		s.gc = newCommitter(s.life, js)
	}
	return s, nil
}

// Config configures Open.
type Config struct {
	// URL of an external NATS server or cluster. Empty: embed a server
	// with its files under DataDir.
	URL string
	// DataDir of the embedded server.
	DataDir string
	// Sync: the embedded server fsyncs every write before acknowledging
	// it (see ServerConfig.Sync).
	Sync bool
	// ListenAddr lets other processes connect to the embedded server
	// (see ServerConfig.ListenAddr).
	ListenAddr string
	// Options of the store itself.
	Options Options
	// NATS options for the connection (credentials, TLS, name).
	NATS []nats.Option
}

// Open opens a store on an embedded server (URL empty) or on the server
// at URL, and owns what it opened: Close closes the connection and shuts
// the embedded server down.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	var (
		srv *Server
		nc  *nats.Conn
		err error
	)
	if cfg.URL == "" {
		srv, err = StartServer(ServerConfig{DataDir: cfg.DataDir, Sync: cfg.Sync, ListenAddr: cfg.ListenAddr, Logger: cfg.Options.Logger})
		if err != nil {
			return nil, fmt.Errorf("open event store: %w", err)
		}
		nc, err = srv.Connect(cfg.NATS...)
		cfg.Options.ReadConn = func() (*nats.Conn, error) { return srv.Connect(cfg.NATS...) }
	} else {
		nc, err = nats.Connect(cfg.URL, cfg.NATS...)
		cfg.Options.ReadConn = func() (*nats.Conn, error) { return nats.Connect(cfg.URL, cfg.NATS...) }
	}
	if err != nil {
		if srv != nil {
			srv.Shutdown()
		}
		return nil, fmt.Errorf("open event store: %w", err)
	}
	s, err := New(ctx, nc, cfg.Options)
	if err != nil {
		nc.Close()
		if srv != nil {
			srv.Shutdown()
		}
		return nil, err
	}
	s.srv = srv
	s.owned = func() {
		// Drain would wait for subscriptions that Close just ended.
		nc.Close()
		if srv != nil {
			srv.Shutdown()
		}
	}
	return s, nil
}

// Close ends the store's subscriptions with events.ErrClosed, and closes
// the connection and server if Open made them. Closing twice is harmless.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.kill()
		if x := s.idx.Load(); x != nil {
			<-x.done
		}
		if s.gc != nil {
			s.gc.wait()
		}
		if s.rnc != nil {
			s.rnc.Close()
		}
		if s.owned != nil {
			s.owned()
		}
	})
	return nil
}

// Conn is the store's NATS connection.
func (s *Store) Conn() *nats.Conn { return s.nc }

// JetStream is the store's JetStream context, for KV buckets and object
// stores beside the log.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// KeyValue creates the KV bucket or opens the existing one (projection
// checkpoints, for example). File storage, the store's replica count is
// not implied: one replica.
func (s *Store) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("key-value %s: %w", bucket, err)
	}
	return kv, nil
}

// ObjectStore creates the object store bucket or opens the existing one
// (run artifacts, for example); ttl 0 keeps objects forever.
func (s *Store) ObjectStore(ctx context.Context, bucket string, ttl time.Duration) (jetstream.ObjectStore, error) {
	obs, err := s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, TTL: ttl, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", bucket, err)
	}
	return obs, nil
}

func (s *Store) closed() bool { return s.life.Err() != nil }

// tail is where a stream ends: its last revision (-1: no stream) and the
// sequence of the message holding that event (0: none).
type tail struct {
	rev int64
	seq uint64
}

// tailCache remembers the last known tail of streams this process wrote or
// read, saving a lookup before an append with an exact expectation. A
// revision's sequence never changes (the log denies deletes), so an entry
// is never wrong, only possibly old: the expected-sequence header catches
// that.
type tailCache struct {
	mu sync.Mutex
	m  map[string]tail
}

const tailCacheSize = 50_000

func (c *tailCache) get(stream string) (tail, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[stream]
	return t, ok
}

func (c *tailCache) put(stream string, t tail) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[stream]; ok && old.rev > t.rev {
		return
	}
	if len(c.m) >= tailCacheSize {
		clear(c.m) // crude, but bounded; an entry only saves one lookup
	}
	c.m[stream] = t
}

// checkOpen returns ErrClosed once the store is closed, else ctx.Err().
func (s *Store) checkOpen(ctx context.Context) error {
	if s.closed() {
		return events.ErrClosed
	}
	return ctx.Err()
}

// translate makes a driver error that a Close caused match ErrClosed.
func (s *Store) translate(err error) error {
	if s.closed() && !errors.Is(err, events.ErrClosed) {
		return fmt.Errorf("%w: %w", events.ErrClosed, err)
	}
	return err
}
