package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// EventLog is what the WebSocket streams read of the event log: a run's
// stream and an organisation's events for replay, and the one live
// subscription the node's hub holds. Any events.Store is one.
type EventLog interface {
	// ReadStream: see events.Store. Returns events.ErrNotFound when the
	// stream does not exist.
	ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error)
	// ReadAll: see events.Store.
	ReadAll(ctx context.Context, after uint64, f events.Filter, limit int) ([]events.Record, error)
	// Subscribe: see events.Store.
	Subscribe(ctx context.Context, after uint64, f events.Filter) (events.Subscription, error)
}

var _ EventLog = events.Store(nil)

// Close codes of the streams, besides the standard 1000 (the run ended:
// after completed, error or cancelled, or at once after caught_up when a
// replayed run had already ended), 1001 (the server is shutting down) and
// 1011 (the stream broke on the server's side: the event store failed).
// Every close but 1000 gives, in its reason, where to resume:
// "…: resume with from=N".
const (
	// CloseSlowConsumer: the client fell more than StreamConfig.Buffer
	// messages behind the live events. Reason: "slow consumer: resume with
	// from=N", N being the revision (position, on the organisation stream)
	// after the last message sent.
	CloseSlowConsumer = 4008
	// CloseTooManyStreams: the user already holds
	// StreamConfig.MaxSocketsPerPrincipal open streams (normally refused
	// with 429 before the upgrade; this code when two raced).
	CloseTooManyStreams = 4029
)

// StreamConfig tunes the WebSocket streams. Zero values take the defaults.
type StreamConfig struct {
	// Buffer is how many live messages a socket may have waiting to be
	// written (default 256). When an event arrives for a socket whose
	// buffer is full, the socket is closed with CloseSlowConsumer; the run
	// and the other sockets never wait for it.
	Buffer int
	// PingInterval is how often an open socket is pinged (default 25 s). A
	// client that answers nothing for two intervals is disconnected.
	PingInterval time.Duration
	// WriteTimeout bounds one write to a socket (default 10 s). A client
	// that reads nothing for that long is disconnected without a close
	// frame: it could not read one.
	WriteTimeout time.Duration
	// ReplayPage is how many events a replay reads from the store at once
	// (default 500).
	ReplayPage int
	// StoreTimeout bounds each store read of a stream (default 10 s).
	StoreTimeout time.Duration
	// MaxSocketsPerPrincipal caps the streams one principal (user or API
	// key of an organisation) holds open at once (default 20); one more
	// is refused with 429 before the upgrade. One tenant's sockets must
	// not slow another's runs.
	MaxSocketsPerPrincipal int
	// MaxReplaysPerPrincipal caps the replays (history reads) one
	// principal runs at once (default 2); its other sockets wait their
	// turn before they subscribe, holding nothing.
	MaxReplaysPerPrincipal int
	// MaxReplays caps the replays of the node at once (default 4), so
	// the memory replays hold stays below MaxReplays × ReplayPage records.
	MaxReplays int
	// ReplayRate caps the events per second one replay sends (default
	// 1,000): history reads share the event store's lock with the
	// appends of every run, so an unpaced replay slows them all.
	ReplayRate int
	// ReplayYieldAbove is the rate of other organisations' live events
	// (events/s, default 100) above which a replay yields to them: its
	// pace drops to ReplayRate/replayFloorDivisor (50 events/s by
	// default) while they arrive faster. Live work
	// comes before history, and one organisation's replays must not
	// slow another's runs.
	ReplayYieldAbove int
}

// replayFloorDivisor: a replay that yields still sends at least
// ReplayRate/replayFloorDivisor events per second.
const replayFloorDivisor = 20

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Buffer <= 0 {
		c.Buffer = 256
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.ReplayPage <= 0 {
		c.ReplayPage = 500
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 10 * time.Second
	}
	if c.MaxSocketsPerPrincipal <= 0 {
		c.MaxSocketsPerPrincipal = 20
	}
	if c.MaxReplaysPerPrincipal <= 0 {
		c.MaxReplaysPerPrincipal = 2
	}
	if c.MaxReplays <= 0 {
		c.MaxReplays = 4
	}
	if c.ReplayRate <= 0 {
		c.ReplayRate = 1000
	}
	if c.ReplayYieldAbove <= 0 {
		c.ReplayYieldAbove = 100
	}
	return c
}

// Why a session ends, besides the hub's errSlowConsumer, errStreamFailed
// and errShuttingDown. closeFor turns each into a close code.
var (
	errClientGone = errors.New("client gone")
	errRunEnded   = errors.New("run ended")
	errStreamGap  = errors.New("stream gap")
)

// maxResyncs is how often a session whose live buffer filled up while it
// replayed goes back to the store before it gives up on the client.
const maxResyncs = 3

// maxClientMessage caps what a client may send: the streams only send.
const maxClientMessage = 4096

// telemetryPermission is what streaming a run of each kind needs.
var telemetryPermission = map[process.Kind]Permission{
	process.KindIon: PermIonViewTelemetry,
	process.KindRTP: PermRTPViewTelemetry,
}

// localStream is the fiber.Ctx local that hands a stream request, checked
// before the upgrade, to the socket.
const localStream = "spectra.stream"

// streams serves the WebSocket endpoints: it accepts upgrades and runs one
// session per socket, all fed by one hub.
type streams struct {
	cfg     StreamConfig
	hub     *hub // nil when the server has no event log: streams answer 503
	logger  *slog.Logger
	upgrade fiber.Handler
	metrics *httpMetrics

	replays chan struct{} // the node's replay slots
	mu      sync.Mutex
	holders map[string]*holder // by principal: its sockets and replay slots
}

// holder is what one principal holds of the streams.
type holder struct {
	sockets int
	replays chan struct{}
}

// open counts a socket of principal key, unless it holds the most
// allowed; check only looks.
func (st *streams) open(key string, check bool) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	h := st.holders[key]
	if h == nil {
		h = &holder{replays: make(chan struct{}, st.cfg.MaxReplaysPerPrincipal)}
	}
	if h.sockets >= st.cfg.MaxSocketsPerPrincipal {
		return false
	}
	if !check {
		h.sockets++
		st.holders[key] = h
	}
	return true
}

func (st *streams) close(key string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if h := st.holders[key]; h != nil {
		if h.sockets--; h.sockets == 0 {
			delete(st.holders, key)
		}
	}
}

// replaySlot waits for a replay slot of the principal and of the node and
// returns the function that gives them back.
func (ss *session) replaySlot() (func(), error) {
	st := ss.st
	st.mu.Lock()
	mine := st.holders[ss.req.principal].replays
	st.mu.Unlock()
	for _, sem := range []chan struct{}{mine, st.replays} {
		select {
		case sem <- struct{}{}:
		case <-ss.h.down:
			if sem == st.replays {
				<-mine
			}
			return nil, errShuttingDown
		case <-ss.gone:
			if sem == st.replays {
				<-mine
			}
			return nil, errClientGone
		}
	}
	// The replay's pace starts now, with no credit (see page).
	ss.paceAt, ss.othersAt, ss.yielding = time.Now(), time.Time{}, false
	return sync.OnceFunc(func() { <-st.replays; <-mine }), nil
}

// streamRequest is what the checks before the upgrade found.
type streamRequest struct {
	principal string // whose socket: organisation and user or API key
	org       string
	run       *projections.Run // nil: the organisation stream
	kinds     []string         // organisation stream: the run id prefixes wanted
	kind      string           // organisation stream: the ?kind= asked for
	types     map[string]bool  // organisation stream: the message types asked for (?types=); nil: all
	from      uint64           // first revision (run) or position (organisation) wanted
}

// registerStreamRoutes adds the WebSocket endpoints. They take the token
// from ?token= too (the seed's way for browsers, which cannot set headers
// on a WebSocket), and are authenticated and authorised like every route,
// before the upgrade.
func (s *Server) registerStreamRoutes(log EventLog) {
	cfg := s.cfg.Stream.withDefaults()
	st := &streams{cfg: cfg, logger: s.log.With("component", "streams"), metrics: s.metrics,
		replays: make(chan struct{}, cfg.MaxReplays), holders: map[string]*holder{}}
	if log != nil {
		st.hub = newHub(log, s.q.Position, st.cfg.Buffer, st.logger)
	}
	st.upgrade = fws.New(st.serve, fws.Config{HandshakeTimeout: 10 * time.Second})
	s.streams = st
	for _, prefix := range []string{"/api/ion/stream", "/api/rtp/stream", "/api/stream"} {
		s.app.Use(prefix, tokenFromQuery)
	}
	for _, k := range []runKind{ionRuns, rtpRuns} {
		s.handle(fiber.MethodGet, k.prefix+"/stream/:run_id", telemetryPermission[k.kind],
			"Stream a "+k.label+" run (WebSocket): replay from ?from=<revision>, caught_up, then live until it ends",
			s.handleRunStream(k))
	}
	s.handle(fiber.MethodGet, "/api/stream", PermJobViewStatus,
		"Stream every run event of the organisation (WebSocket) from ?from=<position>, optionally ?kind=ion|rtp "+
			"and ?types=<message types, comma-separated> (e.g. completed,error,cancelled)",
		s.handleOrgStream)
}

// tokenFromQuery lets ?token=<JWT> stand for the Authorization header on
// the stream endpoints; a header, when present, wins.
func tokenFromQuery(c *fiber.Ctx) error {
	if c.Get(fiber.HeaderAuthorization) == "" && c.Get(HeaderAPIKey) == "" {
		if tok := c.Query("token"); tok != "" {
			c.Request().Header.Set(fiber.HeaderAuthorization, "Bearer "+tok)
		}
	}
	return c.Next()
}

// closeStreams ends every open stream with 1001 (see hub.close).
func (s *Server) closeStreams(ctx context.Context) {
	if s.streams != nil && s.streams.hub != nil {
		s.streams.hub.close(ctx)
	}
}

func (s *Server) handleRunStream(k runKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		run, err := s.lookupRun(c, k)
		if err != nil {
			return err
		}
		from, _, err := queryFrom(c)
		if err != nil {
			return err
		}
		return s.streams.accept(c, &streamRequest{org: principal(c).OrgID, run: &run, from: from})
	}
}

func (s *Server) handleOrgStream(c *fiber.Ctx) error {
	p := principal(c)
	from, set, err := queryFrom(c)
	if err != nil {
		return err
	}
	if !set { // live: from what the read models have reached on
		from = s.q.Position() + 1
	}
	req := &streamRequest{org: p.OrgID, from: from, kind: c.Query("kind")}
	// The stream carries telemetry: a kind whose telemetry the role may
	// not see is left out.
	for _, k := range []runKind{ionRuns, rtpRuns} {
		if (req.kind == "" || req.kind == string(k.kind)) && p.Role.Can(telemetryPermission[k.kind]) {
			req.kinds = append(req.kinds, strings.ToUpper(string(k.kind))+"-")
		}
	}
	if req.kind != "" && req.kind != string(ionRuns.kind) && req.kind != string(rtpRuns.kind) {
		return invalid("kind", req.kind, "ion or rtp", "unknown process kind")
	}
	if len(req.kinds) == 0 {
		return errForbidden("role " + string(p.Role) + " may see no telemetry of the kinds asked for")
	}
	if raw := c.Query("types"); raw != "" {
		req.types = map[string]bool{}
		for _, t := range strings.Split(raw, ",") {
			if !slices.Contains(eventMessageTypes, t) {
				return invalid("types", raw, strings.Join(eventMessageTypes, ", "), "unknown message type "+strconv.Quote(t))
			}
			req.types[t] = true
		}
	}
	return s.streams.accept(c, req)
}

// eventMessageTypes are the types of the messages made from events: what
// ?types= may ask for.
var eventMessageTypes = []string{MessageProgress, MessageTelemetry, MessageAlert, MessageCompleted, MessageError, MessageCancelled}

// queryFrom reads ?from=, an unsigned integer; set reports whether it was
// given.
func queryFrom(c *fiber.Ctx) (from uint64, set bool, err error) {
	raw := c.Query("from")
	if raw == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || n == math.MaxUint64 {
		return 0, false, invalid("from", raw, "an unsigned integer", "not a revision or log position")
	}
	return n, true, nil
}

// accept upgrades a request that passed every check.
func (st *streams) accept(c *fiber.Ctx, req *streamRequest) error {
	if !fws.IsWebSocketUpgrade(c) {
		return &Error{Code: CodeBadRequest, Message: "this endpoint is a WebSocket: send an upgrade request"}
	}
	if st.hub == nil {
		return &Error{Code: CodeUnavailable, Message: "streams are not available on this node"}
	}
	p := principal(c)
	req.principal = p.OrgID + "\x00" + p.UserID + "\x00" + p.APIKeyID
	if !st.open(req.principal, true) {
		return &Error{Code: CodeRateLimited, Message: fmt.Sprintf("at most %d open streams per user; close one first", st.cfg.MaxSocketsPerPrincipal)}
	}
	c.Locals(localStream, req)
	return st.upgrade(c)
}

// session is one open socket.
type session struct {
	st   *streams
	h    *hub
	conn *websocket.Conn
	req  *streamRequest
	gone chan struct{} // closed by the reader when the connection ends
	ping *time.Ticker

	next      uint64 // revision (run) or position (organisation) to send next
	sent      int    // event messages sent
	last      StreamMessage
	hasLast   bool
	live      bool
	artifacts map[string][]streamArtifact // by job: what completed lists

	paceAt     time.Time // when the replay may read its next page
	othersAt   time.Time // when othersSeen was taken
	othersSeen uint64    // hub.othersLive at othersAt
	yielding   bool      // the replay goes at its floor (replayRate)

	// sub is the session's queue of live items in the hub. Its socket is
	// written by the session's goroutine (the replay), then by writer
	// (the live phase: see stream_writer.go), which hands it back
	// (handback says why, back tells) when a write would wait or a gap
	// needs the store. wmu is held by whoever writes; in the live phase
	// the fields below are the writer's.
	sub       *subscriber
	writer    *writer
	raw       syscall.RawConn // nil: writer is the session's own
	wmu       sync.Mutex
	back      chan struct{}
	handback  error
	handle    func(it *liveItem, mayRead bool) error // the live phase's
	held      []*liveItem                            // items the writer left for the session
	peerClose []byte                                 // the client's close frame, when it sent one

	// out is the socket beneath the WebSocket connection, which frames
	// are written to; rest is the part of a frame a write left, ctl the
	// control frames to write, pending the frames not written yet and
	// pendingBytes their size. Frames are written together, in one
	// write, at the end of a replay page or a burst of live events.
	out          net.Conn
	rest         []byte
	ctl          [][]byte
	pending      [][]byte
	pendingBytes int
}

// flushBytes is how many pending bytes a session writes at once, at most.
const flushBytes = 64 << 10

// maxBurst is how many queued live events are taken at once to be
// written together.
const maxBurst = 64

// replaySpan is how much of its pace a replay reads at once: a page is
// at most ReplayRate × replaySpan events (and at most ReplayPage), read
// when the pace allows it, so a replay never reads a burst from the
// event store, not even its first page. History reads share the store
// with every run's appends: a burst of them is what another
// organisation's creates would wait behind.
const replaySpan = 100 * time.Millisecond

// page waits until the replay may read again and returns how many events
// it may read: what its rate (see replayRate) allows over replaySpan, at
// least one and at most ReplayPage. The pace has no credit: a replay
// that was slow to send does not read faster afterwards.
func (ss *session) page() (int, error) {
	now := time.Now()
	if wait := ss.paceAt.Sub(now); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ss.h.down:
			return 0, errShuttingDown
		case <-ss.gone:
			return 0, errClientGone
		}
		now = time.Now()
	}
	rate := ss.replayRate(now)
	n := min(max(1, int(rate*replaySpan.Seconds())), ss.st.cfg.ReplayPage)
	if ss.req.run != nil {
		// A run stream's history is one run's messages, which the store
		// finds by their subject without scanning other runs' (an
		// organisation replay's is every run of the organisation,
		// interleaved with the others' in one log): a page of it at once,
		// at ReplayRate, and no yielding, so that a dashboard opening a
		// run shows it whole at once while other organisations are busy.
		rate, n = float64(ss.st.cfg.ReplayRate), ss.st.cfg.ReplayPage
	}
	ss.paceAt = now.Add(time.Duration(float64(n) / rate * float64(time.Second)))
	return n, nil
}

// replayYieldWindow is how long other organisations' live events must
// stay below ReplayYieldAbove before a replay that yields to them goes at
// full pace again.
const replayYieldWindow = time.Second

// replayRate is the events per second the replay may send now: ReplayRate,
// or ReplayRate/replayFloorDivisor (it yields) from when other
// organisations' live events are seen arriving faster than
// ReplayYieldAbove (over the time since the last page, or longer) until
// they stayed slower for replayYieldWindow. (A pace in proportion to
// their rate still let two replays read ~500 events/s beside another
// organisation's 40 runs/s, enough to raise its create latency.) The
// first page, before their rate is known, goes at ReplayRate: it is at
// most ReplayRate × replaySpan events.
func (ss *session) replayRate(now time.Time) float64 {
	cfg := ss.st.cfg
	seen := ss.h.othersLive(ss.req.org)
	if ss.othersAt.IsZero() {
		ss.othersAt, ss.othersSeen = now, seen
	}
	secs := now.Sub(ss.othersAt).Seconds()
	switch {
	case secs > 0 && float64(seen-ss.othersSeen)/secs > float64(cfg.ReplayYieldAbove):
		ss.yielding = true
		ss.othersAt, ss.othersSeen = now, seen
	case secs >= replayYieldWindow.Seconds():
		ss.yielding = false
		ss.othersAt, ss.othersSeen = now, seen
	}
	if ss.yielding {
		return float64(cfg.ReplayRate) / replayFloorDivisor
	}
	return float64(cfg.ReplayRate)
}

// serve runs a session on an upgraded socket: its goroutine writes, one
// more reads (pongs, the client's close), and both end before it returns.
func (st *streams) serve(c *fws.Conn) {
	req, _ := c.Locals(localStream).(*streamRequest)
	conn := c.Conn
	ss := &session{st: st, h: st.hub, conn: conn, req: req, next: req.from, gone: make(chan struct{}),
		artifacts: map[string][]streamArtifact{}, out: conn.NetConn(), back: make(chan struct{}, 1)}
	stream := ""
	if req.run != nil {
		stream = events.RunStream(req.run.RunID)
	}
	ss.sub = newSubscriber(ss, stream, req.org, st.hub.buffer)
	if !st.hub.track(conn) {
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		return
	}
	defer st.hub.untrack(conn)
	if !st.open(req.principal, false) { // the check before the upgrade raced with another socket
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseTooManyStreams,
			fmt.Sprintf("at most %d open streams per user", st.cfg.MaxSocketsPerPrincipal)), time.Now().Add(time.Second))
		cut(conn)
		return
	}
	defer st.close(req.principal)
	st.metrics.sockets.Inc()
	defer st.metrics.sockets.Dec()
	if ss.raw = rawConn(ss.out); ss.raw != nil {
		ss.writer = st.hub.writer()
	} else { // a writer of its own, which may wait on this one socket
		ss.writer = newWriter(false)
		ctx, cancel := context.WithCancel(st.hub.ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			ss.writer.run(ctx)
		}()
		defer func() { cancel(); <-done }()
	}
	go ss.read()
	ss.ping = time.NewTicker(st.cfg.PingInterval)
	defer ss.ping.Stop()

	var err error
	if req.run != nil {
		err = ss.streamRun()
	} else {
		err = ss.streamOrg()
	}
	if !errors.Is(err, errClientGone) {
		if ferr := ss.flush(); ferr != nil {
			err = ferr
		}
	}
	code, reason := ss.closeFor(err)
	st.metrics.closes.WithLabelValues(strconv.Itoa(code)).Inc()
	if code == 0 {
		select { // the client closed: answer its close frame
		case <-ss.gone:
			if ss.peerClose != nil {
				_ = conn.WriteControl(websocket.CloseMessage, ss.peerClose, time.Now().Add(time.Second))
			}
		default:
		}
	}
	if code != 0 {
		if conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
			time.Now().Add(time.Second)) == nil {
			select { // the client's close reply, briefly
			case <-ss.gone:
			case <-time.After(time.Second):
			}
		}
	}
	cut(conn)
	<-ss.gone
}

// read reads until the connection ends, which it then reports by closing
// gone. The client sends nothing but pongs and its close; the read deadline,
// moved on by every pong, drops a client that stopped answering pings.
func (ss *session) read() {
	defer close(ss.gone)
	wait := 2 * ss.st.cfg.PingInterval
	c := ss.conn
	c.SetReadLimit(maxClientMessage)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(wait)) })
	// Only the session and its writer write to the socket, whole frames
	// at a time: the answers to the client's ping and close go through
	// them too.
	c.SetPingHandler(func(data string) error {
		ss.sub.control(controlFrame(websocket.PongMessage, []byte(data)))
		return nil
	})
	c.SetCloseHandler(func(code int, _ string) error {
		ss.peerClose = []byte{}
		if code != websocket.CloseNoStatusReceived {
			ss.peerClose = websocket.FormatCloseMessage(code, "")
		}
		return nil
	})
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
	}
}

// closeFor turns why a session ended into a close code and reason; 0 when
// no close frame can be sent (the client is gone).
func (ss *session) closeFor(err error) (int, string) {
	resume := "resume with from=" + strconv.FormatUint(ss.next, 10)
	switch {
	case errors.Is(err, errClientGone):
		return 0, ""
	case errors.Is(err, errRunEnded):
		return websocket.CloseNormalClosure, "run ended"
	case errors.Is(err, errShuttingDown):
		return websocket.CloseGoingAway, "server shutting down: " + resume
	case errors.Is(err, errSlowConsumer):
		return CloseSlowConsumer, "slow consumer: " + resume
	}
	ss.st.logger.Error("stream interrupted", slog.Any("error", err))
	return websocket.CloseInternalServerErr, "stream interrupted: " + resume
}

// streamRun replays a run's stream from the revision asked for, says
// caught_up, then sends its live events until it ends. Live events at or
// below the last revision sent are dropped; a live event beyond the next
// one expected is preceded by those between, read from the store.
func (ss *session) streamRun() error {
	run := ss.req.run
	stream := events.RunStream(run.RunID)
	if ss.next > 0 && len(run.Artifacts) > 0 {
		ss.artifacts[run.JobID] = slices.Clone(run.Artifacts)
	}
	// The replay slot comes first: waiting for it holds no live buffer.
	release, err := ss.replaySlot()
	if err != nil {
		return err
	}
	defer release()
	if err := ss.h.subscribe(ss.sub); err != nil {
		return err
	}
	defer ss.h.unsubscribe(ss.sub)
	err = ss.sendJSON(StreamMessage{Type: MessageConnected, RunID: run.RunID, Timestamp: time.Now().UTC(),
		Data: map[string]any{"run_id": run.RunID, "kind": run.Kind, "status": run.Status, "progress": run.Progress,
			"current_step": run.CurrentStep, "from": ss.next}})
	if err != nil {
		return err
	}
	if err := ss.replay(func() error { return ss.replayRun(stream) }); err != nil {
		return err
	}
	ended, err := ss.runEnded(stream)
	if err != nil {
		return err
	}
	release()
	if err := ss.caughtUp(); err != nil {
		return err
	}
	if ended {
		return errRunEnded
	}
	ss.live = true
	return ss.follow(func(it *liveItem, mayRead bool) error {
		switch rev := it.rec.Revision; {
		case rev < ss.next:
			return nil // sent already (replayed, or read to fill a gap)
		case rev > ss.next:
			if !mayRead {
				return errNeedsStore
			}
			if err := ss.fill(stream, rev); err != nil {
				return err
			}
		}
		msg, frame, err := it.prepared()
		if err != nil {
			return err
		}
		return ss.sendEvent(msg, frame)
	})
}

// streamOrg replays the organisation's run events from the position asked
// for, says caught_up, then sends live ones; it ends only when the client
// or the server does.
func (ss *session) streamOrg() error {
	release, err := ss.replaySlot()
	if err != nil {
		return err
	}
	defer release()
	if err := ss.h.subscribe(ss.sub); err != nil {
		return err
	}
	defer ss.h.unsubscribe(ss.sub)
	data := map[string]any{"org_id": ss.req.org, "from": ss.next}
	if ss.req.kind != "" {
		data["kind"] = ss.req.kind
	}
	if ss.req.types != nil {
		data["types"] = slices.DeleteFunc(slices.Clone(eventMessageTypes), func(t string) bool { return !ss.req.types[t] })
	}
	if err := ss.sendJSON(StreamMessage{Type: MessageConnected, Timestamp: time.Now().UTC(), Data: data}); err != nil {
		return err
	}
	if err := ss.replay(ss.replayOrg); err != nil {
		return err
	}
	release()
	if err := ss.caughtUp(); err != nil {
		return err
	}
	ss.live = true
	return ss.follow(func(it *liveItem, _ bool) error {
		if it.rec.Position < ss.next { // replayed already; the hub checked wants
			return nil
		}
		msg, frame, err := it.prepared()
		if err != nil {
			return err
		}
		return ss.sendEvent(msg, frame)
	})
}

// wants reports whether the session's stream needs a live item: on the
// organisation stream, its kind and type filters (an artifact's progress
// message is needed for the artifacts completed lists).
func (ss *session) wants(it *liveItem) bool {
	if ss.req.run != nil {
		return true
	}
	if !ss.wantsRecord(it.rec) {
		return false
	}
	if ss.req.types == nil {
		return true
	}
	base := events.BaseType(it.rec.Type)
	return ss.req.types[messageTypeOf(base)] || ss.req.types[MessageCompleted] && base == events.TypeArtifactStored
}

// wantsRecord reports whether the organisation stream sends rec (its kind
// filter).
func (ss *session) wantsRecord(rec events.Record) bool {
	id := events.StreamID(rec.Stream)
	for _, p := range ss.req.kinds {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// replay runs read (which sends the history from ss.next on) with the
// session subscribed, so nothing appended meanwhile is missed. When its
// queue filled up meanwhile, the hub has dropped it: replay subscribes
// again and reads on from the store, up to maxResyncs times.
func (ss *session) replay(read func() error) error {
	for resyncs := 0; ; resyncs++ {
		if err := read(); err != nil {
			return err
		}
		ss.sub.mu.Lock()
		err := ss.sub.err
		ss.sub.mu.Unlock()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errSlowConsumer) || resyncs == maxResyncs {
			return err
		}
		if err := ss.h.subscribe(ss.sub); err != nil {
			return err
		}
	}
}

func (ss *session) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(ss.h.ctx, ss.st.cfg.StoreTimeout)
}

// interrupted reports a shutdown or a client gone, checked between pages.
func (ss *session) interrupted() error {
	select {
	case <-ss.h.down:
		return errShuttingDown
	case <-ss.gone:
		return errClientGone
	default:
		return nil
	}
}

// replayRun sends a run stream's stored events from ss.next on.
func (ss *session) replayRun(stream string) error {
	for {
		if err := ss.interrupted(); err != nil {
			return err
		}
		page, err := ss.page()
		if err != nil {
			return err
		}
		ctx, cancel := ss.storeCtx()
		recs, err := ss.h.log.ReadStream(ctx, stream, events.Forwards, ss.next, page)
		cancel()
		if errors.Is(err, events.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("replay %s from %d: %w", stream, ss.next, err)
		}
		for _, rec := range recs {
			if rec.Revision < ss.next {
				continue
			}
			if err := ss.sendStored(rec); err != nil {
				return err
			}
		}
		if err := ss.flush(); err != nil {
			return err
		}
		if len(recs) < page {
			return nil
		}
	}
}

// replayOrg sends the organisation's stored run events from ss.next on.
func (ss *session) replayOrg() error {
	f := events.Filter{Categories: []string{events.CategoryRun}, OrgID: ss.req.org}
	for {
		if err := ss.interrupted(); err != nil {
			return err
		}
		page, err := ss.page()
		if err != nil {
			return err
		}
		after := ss.next - min(ss.next, 1) // positions from next on
		ctx, cancel := ss.storeCtx()
		recs, err := ss.h.log.ReadAll(ctx, after, f, page)
		cancel()
		if err != nil {
			return fmt.Errorf("replay organisation from %d: %w", ss.next, err)
		}
		for _, rec := range recs {
			if !ss.wantsRecord(rec) {
				ss.next = max(ss.next, rec.Position+1) // skipped, but read: go on after it
				continue
			}
			if err := ss.sendStored(rec); err != nil {
				return err
			}
		}
		if err := ss.flush(); err != nil {
			return err
		}
		if len(recs) < page {
			return nil
		}
	}
}

// fill sends the events of a run stream from ss.next up to, not
// including, revision upto: a gap between what the session sent and a live
// event. With the hub subscribed before the replay, gaps do not happen;
// fill makes sure of it.
func (ss *session) fill(stream string, upto uint64) error {
	ctx, cancel := ss.storeCtx()
	recs, err := ss.h.log.ReadStream(ctx, stream, events.Forwards, ss.next, int(upto-ss.next))
	cancel()
	if err != nil {
		return fmt.Errorf("fill %s from %d to %d: %w", stream, ss.next, upto, err)
	}
	for _, rec := range recs {
		if rec.Revision != ss.next {
			break
		}
		if err := ss.sendStored(rec); err != nil {
			return err
		}
	}
	if ss.next != upto {
		return fmt.Errorf("fill %s: store has revisions up to %d, want %d: %w", stream, ss.next, upto, errStreamGap)
	}
	return nil
}

// runEnded reports whether the run's stream, as replayed, ends with a
// terminal event: the socket then closes after caught_up. When nothing
// was replayed (from is past the end), the stream's last event says.
func (ss *session) runEnded(stream string) (bool, error) {
	if ss.hasLast {
		return ss.last.Terminal(), nil
	}
	if ss.next == 0 {
		return false, nil
	}
	ctx, cancel := ss.storeCtx()
	recs, err := ss.h.log.ReadStream(ctx, stream, events.Backwards, math.MaxUint64, 1)
	cancel()
	if errors.Is(err, events.ErrNotFound) || len(recs) == 0 {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read end of %s: %w", stream, err)
	}
	return recs[0].Revision < ss.next && newStreamMessage(recs[0]).Terminal(), nil
}

func (ss *session) caughtUp() error {
	m := StreamMessage{Type: MessageCaughtUp, Timestamp: time.Now().UTC(),
		Data: map[string]any{"replayed": ss.sent, "next": ss.next}}
	if ss.req.run != nil {
		m.RunID = ss.req.run.RunID
	}
	if ss.hasLast {
		m.Revision, m.Position = ss.last.Revision, ss.last.Position
	}
	return ss.sendJSON(m)
}

// sendStored queues the message of a stored event, writing what is
// pending when it grew past flushBytes.
func (ss *session) sendStored(rec events.Record) error {
	if err := ss.sendEvent(newStreamMessage(rec), nil); err != nil {
		return err
	}
	if ss.pendingBytes >= flushBytes {
		return ss.flush()
	}
	return nil
}

// sendEvent queues an event's message (frame, when set, is its shared
// encoding) and moves the session past it. On a live run stream a
// terminal message ends the session (errRunEnded), once written.
func (ss *session) sendEvent(msg StreamMessage, frame []byte) error {
	var jobID string
	if msg.Type == MessageCompleted || msg.Event == events.TypeArtifactStored { // the rest have no artifacts to note
		d, _ := msg.Data.(map[string]any)
		jobID, _ = d["job_id"].(string)
		if a, ok := d["artifact"].(streamArtifact); ok {
			if !slices.ContainsFunc(ss.artifacts[jobID], func(x streamArtifact) bool { return x.Name == a.Name }) {
				ss.artifacts[jobID] = append(ss.artifacts[jobID], a)
			}
		}
	}
	if ss.req.types != nil && !ss.req.types[msg.Type] { // ?types= leaves it out: seen, not sent
		ss.next = max(ss.next, *msg.Position+1)
		return nil
	}
	var err error
	switch {
	case msg.Type == MessageCompleted:
		frame, err = encodeFrame(withArtifacts(msg, ss.artifacts[jobID]))
	case frame == nil:
		frame, err = encodeFrame(msg)
	}
	if err != nil {
		return err
	}
	if err := ss.queue(frame); err != nil {
		return err
	}
	ss.sent++
	ss.last, ss.hasLast = msg, true
	if ss.req.run != nil {
		ss.next = *msg.Revision + 1
	} else {
		ss.next = *msg.Position + 1
	}
	if ss.live && ss.req.run != nil && msg.Terminal() {
		return errRunEnded
	}
	return nil
}

// sendJSON writes m after what is pending.
func (ss *session) sendJSON(m StreamMessage) error {
	frame, err := encodeFrame(m)
	if err != nil {
		return err
	}
	if err := ss.queue(frame); err != nil {
		return err
	}
	return ss.flush()
}

// queue adds a frame to the pending ones.
func (ss *session) queue(frame []byte) error {
	ss.pending = append(ss.pending, frame)
	ss.pendingBytes += len(frame)
	return nil
}
