package kurrent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/spectra-fab/spectra/events"
)

var _ events.Store = (*Store)(nil)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// Logger receives the client's log (at debug and info level) and the
	// store's reconnections. Nil means slog.Default().
	Logger *slog.Logger
	// PageSize is how many events a ReadAll asks the server for at a time.
	// Default 500.
	PageSize int
	// Namespace is put in front of every stream name, so several
	// deployments (or test runs) can share one server: each sees only its
	// own streams, and a new namespace is an empty store. Empty by default.
	Namespace string
	// RetryDelay is the first pause before a dropped subscription
	// subscribes again; it doubles up to MaxRetryDelay. Defaults 100 ms, 5 s.
	RetryDelay, MaxRetryDelay time.Duration
	// CallTimeout bounds every call to the server whose context has no
	// deadline of its own (default 10 s): a hung server fails the call
	// with context.DeadlineExceeded instead of hanging its caller.
	CallTimeout time.Duration
	// ProbeInterval is how often the store asks an unreachable server
	// whether it is back (default 500 ms). DownAfter (default 2 s) is how
	// long a call may go unanswered before the store checks the server
	// with a ping, and how long that ping may go unanswered before the
	// server is taken for down: a hung server is known down within
	// 2 × DownAfter, and a slow one that still answers pings is not. See
	// Down.
	ProbeInterval, DownAfter time.Duration
}

// Store is the events.Store on KurrentDB. It is safe for concurrent use.
type Store struct {
	config *esdb.Configuration
	opts   Options
	log    *slog.Logger

	mu     sync.Mutex
	cur    *conn // the client calls go to
	closed bool
	subs   map[*subscription]struct{}
	wg     sync.WaitGroup // subscription goroutines, the prober and checks
	down   error          // why the server is taken to be unreachable (Down)
	gone   chan struct{}  // closed when down is set, replaced when it clears
	check  bool           // a check of a slow server runs (suspect)
	stop   chan struct{}  // closed by Close: ends the prober
	life   context.Context
	end    context.CancelFunc // cancels life: Close ends checks and probes
}

// conn is one client with the number of calls inside it. A client is
// closed only once it is retired and no call is inside it: closing the
// client closes a channel that a call may be blocked sending on, which
// would panic.
type conn struct {
	client  *esdb.Client
	calls   int
	retired bool
}

// Open connects to KurrentDB. connString is a KurrentDB connection string:
// esdb://, esdb+discover://, kurrentdb:// or kurrentdb+discover://, with
// several hosts for a cluster's gossip seeds, credentials as user:password@
// (sent only over TLS) and settings such as tls=false, tlsCAFile=…,
// tlsVerifyCert=false, nodePreference=leader. Open makes one call (a read
// of the end of $all) to check the server answers and the user may read
// $all; ctx bounds it.
func Open(ctx context.Context, connString string, o Options) (*Store, error) {
	cfg, err := parseConnString(connString)
	if err != nil {
		return nil, fmt.Errorf("open kurrentdb: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 100 * time.Millisecond
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 500 * time.Millisecond
	}
	if o.DownAfter <= 0 {
		o.DownAfter = 2 * time.Second
	}
	if o.MaxRetryDelay < o.RetryDelay {
		o.MaxRetryDelay = max(5*time.Second, o.RetryDelay)
	}
	cfg.Logger = clientLogger(o.Logger)
	if cfg.DisableTLS && cfg.Username != "" {
		o.Logger.Warn("kurrentdb: credentials are not sent without TLS", "user", cfg.Username)
	}
	client, err := esdb.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("open kurrentdb: %w", err)
	}
	s := &Store{config: cfg, opts: o, log: o.Logger, cur: &conn{client: client}, subs: map[*subscription]struct{}{},
		stop: make(chan struct{}), gone: make(chan struct{})}
	s.life, s.end = context.WithCancel(context.Background())
	if err := s.ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open kurrentdb: %w", err)
	}
	return s, nil
}

// parseConnString accepts KurrentDB's schemes besides esdb's, and never
// puts the connection string (which may hold a password) in an error.
func parseConnString(s string) (*esdb.Configuration, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return nil, errors.New("connection string: no scheme")
	}
	switch strings.ToLower(scheme) {
	case "esdb", "kurrentdb", "kurrent", "kdb":
		scheme = "esdb"
	case "esdb+discover", "kurrentdb+discover", "kurrent+discover", "kdb+discover":
		scheme = "esdb+discover"
	default:
		return nil, fmt.Errorf("connection string: unknown scheme %q", scheme)
	}
	cfg, err := esdb.ParseConnectionString(scheme + "://" + rest)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the string, password included
		}
		return nil, fmt.Errorf("connection string: %w", err)
	}
	return cfg, nil
}

func clientLogger(l *slog.Logger) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...any) {
		lv := slog.LevelDebug
		if level == esdb.LogWarn || level == esdb.LogError {
			// The client logs every dropped subscription and failed call
			// as an error, closing ones included; the store reports what
			// matters itself.
			lv = slog.LevelInfo
		}
		l.Log(context.Background(), lv, "kurrentdb client: "+fmt.Sprintf(format, args...))
	}
}

// call runs fn on the current client, counted as inside it, and gives up
// waiting when ctx ends (the client ignores ctx while it discovers a node).
// A client that closed itself for good (its discovery failed) is replaced
// and fn runs once more on the new one: nothing was sent on the old one.
// What the call learns of the server's health goes to Down.
//
// While the server is down, one call at a time goes into the client (a
// probe's or a caller's) and the others fail at once with Down's reason
// (events.ErrUnavailable): a client whose discovery fails stops reading
// its request channel, and every call queued on it then waits for ever (a
// leaked goroutine each). A call waiting when the server is taken for
// down fails then, with events.ErrUnavailable, rather than at its
// deadline; so does the call let in while it is down that has no answer
// within DownAfter.
func (s *Store) call(ctx context.Context, fn func(*esdb.Client) error) error {
	err := s.callOnce(ctx, fn)
	s.observe(err)
	return err
}

func (s *Store) callOnce(ctx context.Context, fn func(*esdb.Client) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.CallTimeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		cn, gone, err := s.acquire()
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() {
			defer s.release(cn)
			done <- fn(cn.client)
		}()
		// A call without an answer for DownAfter has the server checked
		// (suspect); once it is taken for down the call fails at once, as
		// commands are refused meanwhile, instead of each waiting out its
		// own deadline.
		slow := time.NewTimer(s.opts.DownAfter)
	wait:
		for {
			select {
			case err = <-done:
				break wait
			case <-slow.C:
				if gone == nil { // let in while down, to find the server back: it is not
					return s.unavailable()
				}
				s.suspect()
				slow.Reset(s.opts.DownAfter) // slow but up: checked again if it stays so
			case <-gone:
				slow.Stop()
				return s.unavailable()
			case <-ctx.Done():
				slow.Stop()
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("kurrentdb: no answer in time: %w", ctx.Err())
				}
				return ctx.Err()
			}
		}
		slow.Stop()
		if attempt == 0 && hasCode(err, esdb.ErrorCodeConnectionClosed) {
			s.retire(cn)
			continue
		}
		return err
	}
}

// acquire counts a call into the current client. gone is closed when the
// server is taken for down; nil when it already is.
func (s *Store) acquire() (cn *conn, gone <-chan struct{}, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, events.ErrClosed
	}
	if s.down != nil && s.cur.calls > 0 {
		return nil, nil, s.down // one call at a time while the server is down (call)
	}
	if s.down == nil {
		gone = s.gone
	}
	s.cur.calls++
	return s.cur, gone, nil
}

// unavailable is the error of a call given up because the server is down.
func (s *Store) unavailable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil {
		return s.down
	}
	return fmt.Errorf("%w: kurrentdb: no answer in %v", events.ErrUnavailable, s.opts.DownAfter)
}

func (s *Store) release(cn *conn) {
	s.mu.Lock()
	cn.calls--
	closeNow := cn.retired && cn.calls == 0
	s.mu.Unlock()
	if closeNow {
		cn.client.Close()
	}
}

// retire replaces cn as the current client (unless the store is closed)
// and closes it once no call is inside it.
func (s *Store) retire(cn *conn) {
	s.mu.Lock()
	if cn.retired {
		s.mu.Unlock()
		return
	}
	cn.retired = true
	if s.cur == cn && !s.closed {
		if client, err := esdb.NewClient(s.config); err == nil {
			s.cur = &conn{client: client}
			s.log.Info("kurrentdb: client closed itself, new client created")
		}
	}
	closeNow := cn.calls == 0
	s.mu.Unlock()
	if closeNow {
		cn.client.Close()
	}
}

// Down reports why the server is unreachable (an error matching
// events.ErrUnavailable): a call found no server, or one left a call and
// then a ping unanswered for DownAfter each, and no call has been
// answered since. While it is down the store asks the server every
// ProbeInterval whether it is back, so Down clears without waiting for
// traffic. nil means the last call was answered (whatever the answer), or
// the server is slow but answers pings. Callers use it to refuse commands
// at once (503) rather than after a timeout.
func (s *Store) Down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// observe records what a call's outcome says of the server: an answer,
// even a refusal, means it is up; no server (a refused connection, a
// client that gave up discovering) means it is down, and starts the
// prober. A call that ran out of its own time says only that the server
// is slow: it is checked (suspect).
func (s *Store) observe(err error) {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, events.ErrClosed), errors.Is(err, events.ErrUnavailable):
		return // says nothing new of the server
	case err == nil || answered(err):
		s.mu.Lock()
		was := s.down
		if was != nil {
			s.down, s.gone = nil, make(chan struct{})
		}
		s.mu.Unlock()
		if was != nil {
			s.log.Info("kurrentdb: reachable again")
		}
		return
	case errors.Is(err, context.DeadlineExceeded):
		s.suspect()
		return
	}
	s.takeDown(err)
}

// takeDown takes the server for down for the reason err: calls waiting
// for it fail, new ones fail at once, and the prober starts.
func (s *Store) takeDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil || s.closed {
		return
	}
	s.down = fmt.Errorf("%w: kurrentdb unreachable: %w", events.ErrUnavailable, err)
	close(s.gone)
	s.log.Warn("kurrentdb: unreachable; probing until it answers", "err", err)
	s.wg.Add(1)
	go s.probe()
}

// suspect checks a server that left a call unanswered: a ping it leaves
// unanswered for DownAfter takes it for down; an answer, even a late
// call's, means it is slow but up. One check runs at a time.
func (s *Store) suspect() {
	s.mu.Lock()
	if s.check || s.down != nil || s.closed {
		s.mu.Unlock()
		return
	}
	s.check = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.life, s.opts.DownAfter)
		err := s.callOnce(ctx, s.pingCall(ctx))
		cancel()
		s.mu.Lock()
		s.check = false
		s.mu.Unlock()
		if errors.Is(err, context.DeadlineExceeded) {
			s.takeDown(fmt.Errorf("a call and then a ping unanswered for %v each", s.opts.DownAfter))
			return
		}
		s.observe(err)
	}()
}

// probe pings the server every ProbeInterval until it answers or the
// store closes. One runs at a time: observe starts it on the first
// failure after an answer.
//
// While the server is down one call at a time goes into the client
// (call): the probe waits for the one inside (its own last ping, still
// discovering, or a caller's). A client can keep a call for ever,
// though: one whose discovery failed stops serving its request channel
// without closing it (esdb connectionStateMachine), so a call that asked
// it for a connection meanwhile, or reports an error to it, blocks for
// good. Calls that reached it before the store knew the server was down
// get stuck so; the one such call would hold the client's place until
// the end, the probe would never ping and every call would fail with the
// old reason long after the server was back. A client busy for longer
// than CallTimeout is so taken for stuck and replaced (retire): the
// stuck call keeps the old one, the probe and the callers get a new one.
func (s *Store) probe() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.ProbeInterval)
	defer t.Stop()
	var busySince time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		cn := s.cur
		busy := cn.calls > 0
		s.mu.Unlock()
		if !busy {
			busySince = time.Time{}
		} else {
			if busySince.IsZero() {
				busySince = time.Now()
			}
			if time.Since(busySince) < s.opts.CallTimeout {
				continue
			}
			s.log.Warn("kurrentdb: a call is stuck inside the client; replacing the client",
				"busy_for", time.Since(busySince).Round(time.Millisecond))
			s.retire(cn)
			busySince = time.Time{}
		}
		ctx, cancel := context.WithTimeout(s.life, s.opts.DownAfter)
		s.observe(s.callOnce(ctx, s.pingCall(ctx))) // an answer clears down
		cancel()
		if s.Down() == nil {
			return
		}
	}
}

// answered reports whether err is the server's answer (a refusal, a
// conflict, a missing stream) rather than the absence of one.
func answered(err error) bool {
	var e *esdb.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case esdb.ErrorCodeWrongExpectedVersion, esdb.ErrorCodeResourceNotFound, esdb.ErrorCodeStreamDeleted,
		esdb.ErrorCodeAccessDenied, esdb.ErrorCodeUnauthenticated, esdb.ErrorCodeResourceAlreadyExists,
		esdb.ErrorCodeNotLeader, esdb.ErrorCodeUnsupportedFeature, esdb.ErrorCodeParsing:
		return true
	}
	return false
}

// Close ends the subscriptions (they return events.ErrClosed) and closes
// the client once the calls inside it return.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.end()
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	cur := s.cur
	s.mu.Unlock()
	for _, sub := range subs {
		sub.cancel()
	}
	s.wg.Wait()
	s.retire(cur)
	return nil
}

// Append writes evs to stream if it is at the expected revision. Returns
// a *events.ConflictError when it is not, events.ErrInvalid for an empty
// append, a bad stream name, or an event whose id is not a UUID.
func (s *Store) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error) {
	if err := events.ValidateAppend(stream, expected, evs, 0); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	var exp esdb.ExpectedRevision
	switch {
	case expected == events.ExpectAny:
		exp = esdb.Any{}
	case expected == events.ExpectNoStream:
		exp = esdb.NoStream{}
	default: // a revision: ValidateAppend refused anything else
		exp = esdb.Revision(uint64(expected))
	}
	data := make([]esdb.EventData, len(evs))
	for i, ev := range evs {
		id, err := uuid.Parse(ev.ID)
		if err != nil {
			return events.AppendResult{}, fmt.Errorf("append %s: event %d needs a UUID id: %w", stream, i, events.ErrInvalid)
		}
		md, err := json.Marshal(wireMetadata{Metadata: ev.Metadata, Correlation: ev.Metadata.CorrelationID, Causation: ev.Metadata.CausationID})
		if err != nil {
			return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
		}
		payload := []byte(ev.Data)
		if payload == nil {
			payload = []byte{}
		}
		data[i] = esdb.EventData{EventID: id, EventType: ev.Type, ContentType: esdb.ContentTypeJson, Data: payload, Metadata: md}
	}
	var wr *esdb.WriteResult
	err := s.call(ctx, func(c *esdb.Client) (err error) {
		wr, err = c.AppendToStream(ctx, s.opts.Namespace+stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, data...)
		return err
	})
	if hasCode(err, esdb.ErrorCodeWrongExpectedVersion) {
		return s.conflict(ctx, stream, expected, evs)
	}
	if err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, translate(err))
	}
	// NextExpectedVersion is the revision of the last event written.
	res := events.AppendResult{Revision: wr.NextExpectedVersion, Position: wr.CommitPosition}
	if wr.CommitPosition == 0 {
		// An idempotent replay is answered without a position: look it up.
		recs, err := s.ReadStream(ctx, stream, events.Forwards, wr.NextExpectedVersion, 1)
		if err != nil {
			return events.AppendResult{}, fmt.Errorf("append %s: position of revision %d: %w", stream, wr.NextExpectedVersion, err)
		}
		if len(recs) == 1 {
			res.Position = recs[0].Position
		}
	}
	return res, nil
}

// conflict builds the ConflictError of a wrong expected version, unless
// the events are already where the append wanted them (a retry whose
// first acknowledgement was lost, after the server forgot their ids): then
// it returns the original result.
func (s *Store) conflict(ctx context.Context, stream string, expected events.Expected, evs []events.Event) (events.AppendResult, error) {
	cerr := &events.ConflictError{Stream: stream, Expected: expected, Actual: -2}
	last, err := s.ReadStream(ctx, stream, events.Backwards, math.MaxUint64, 1)
	switch {
	case errors.Is(err, events.ErrNotFound):
		cerr.Actual = -1
	case err != nil || len(last) == 0:
		return events.AppendResult{}, cerr
	default:
		cerr.Actual = int64(last[0].Revision)
	}
	first := int64(-1)
	switch {
	case expected == events.ExpectNoStream:
		first = 0
	case expected >= 0:
		first = int64(expected) + 1
	}
	if first < 0 || cerr.Actual < first+int64(len(evs))-1 {
		return events.AppendResult{}, cerr
	}
	recs, err := s.ReadStream(ctx, stream, events.Forwards, uint64(first), len(evs))
	if err != nil || len(recs) != len(evs) {
		return events.AppendResult{}, cerr
	}
	for i, rec := range recs {
		if rec.ID != evs[i].ID {
			return events.AppendResult{}, cerr
		}
	}
	lastRec := recs[len(recs)-1]
	return events.AppendResult{Revision: lastRec.Revision, Position: lastRec.Position}, nil
}

// ReadStream reads up to limit records of stream from revision from in
// dir. Returns events.ErrNotFound when the stream does not exist.
func (s *Store) ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error) {
	if err := events.ValidateStream(stream); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	opts := esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(from)}
	if dir == events.Backwards {
		opts.Direction = esdb.Backwards
		if from == math.MaxUint64 {
			opts.From = esdb.End{}
		}
	}
	count := uint64(math.MaxInt64)
	if limit > 0 {
		count = uint64(limit)
	}
	var recs []events.Record
	err := s.call(ctx, func(c *esdb.Client) error {
		rs, err := c.ReadStream(ctx, s.opts.Namespace+stream, opts, count)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			re, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			rec, _ := s.record(re)
			recs = append(recs, rec)
		}
	})
	if hasCode(err, esdb.ErrorCodeStreamDeleted) {
		err = events.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, translate(err))
	}
	return recs, nil
}

// ReadAll reads up to limit records after position after that pass f, in
// position order. $all reads are inclusive of their start: the record at
// after itself is dropped. The whole filter is applied here (the client
// has no server-side filter for reads).
func (s *Store) ReadAll(ctx context.Context, after uint64, f events.Filter, limit int) ([]events.Record, error) {
	var out []events.Record
	cursor, have := after, after > 0
	for {
		var from esdb.AllPosition = esdb.Start{}
		if have {
			from = esdb.Position{Commit: cursor, Prepare: cursor}
		}
		n := 0
		err := s.call(ctx, func(c *esdb.Client) error {
			rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{From: from}, uint64(s.opts.PageSize))
			if err != nil {
				return err
			}
			defer rs.Close()
			for {
				re, err := rs.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				n++
				rec, ours := s.record(re)
				if have && rec.Position <= cursor {
					continue
				}
				cursor, have = rec.Position, true
				if !ours || !f.Match(rec) {
					continue
				}
				out = append(out, rec)
				if limit > 0 && len(out) == limit {
					return nil
				}
			}
		})
		if err != nil {
			return nil, fmt.Errorf("read all after %d: %w", after, translate(err))
		}
		if (limit > 0 && len(out) == limit) || n < s.opts.PageSize {
			return out, nil
		}
	}
}

// ping reads the last event of $all.
func (s *Store) ping(ctx context.Context) error {
	return s.call(ctx, s.pingCall(ctx))
}

func (s *Store) pingCall(ctx context.Context) func(c *esdb.Client) error {
	return func(c *esdb.Client) error {
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		if _, err := rs.Recv(); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
}

// wireMetadata is the custom metadata stored with an event: ours, plus the
// KurrentDB names of the correlation and causation ids.
type wireMetadata struct {
	events.Metadata
	Correlation string `json:"$correlationId,omitempty"`
	Causation   string `json:"$causationId,omitempty"`
}

// record converts a read or received event; ours is false for a system
// event or one outside the store's namespace, which callers never see.
func (s *Store) record(re *esdb.ResolvedEvent) (rec events.Record, ours bool) {
	ev := re.OriginalEvent()
	pos := ev.Position.Commit
	if pos == math.MaxUint64 {
		// Servers before 22.10 give stream reads no commit position; the
		// prepare position is the event's own for single-stream appends.
		pos = ev.Position.Prepare
		if pos == math.MaxUint64 {
			pos = 0
		}
	}
	stream, inNS := strings.CutPrefix(ev.StreamID, s.opts.Namespace)
	rec = events.Record{
		ID:       ev.EventID.String(),
		Stream:   stream,
		Revision: ev.EventNumber,
		Position: pos,
		Type:     ev.EventType,
		Time:     ev.CreatedDate,
		Data:     json.RawMessage(ev.Data),
	}
	if ev.SystemMetadata[createdMissing] != "" {
		rec.Time = time.Time{}
	}
	if len(ev.UserMetadata) > 0 {
		// Events written by other programs may carry other metadata; it is
		// not ours to reject.
		_ = json.Unmarshal(ev.UserMetadata, &rec.Metadata)
	}
	// KurrentDB's own streams and events start with "$".
	system := strings.HasPrefix(ev.StreamID, "$") || strings.HasPrefix(rec.Type, "$")
	return rec, inNS && !system
}

func hasCode(err error, code esdb.ErrorCode) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == code
}

// translate maps the client's error codes onto the port's sentinels.
func translate(err error) error {
	var e *esdb.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code() {
	case esdb.ErrorCodeResourceNotFound:
		return events.ErrNotFound
	}
	return err
}
