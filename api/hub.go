package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/spectra-fab/spectra/events"
)

// Why a hub ended a subscriber. A stream session turns them into close
// codes (see stream.go).
var (
	// errSlowConsumer: the subscriber's buffer was full when the hub had a
	// record for it. The hub never waits for a subscriber.
	errSlowConsumer = errors.New("slow consumer")
	// errStreamFailed: the hub's subscription to the log ended for good
	// (the store was closed).
	errStreamFailed = errors.New("event stream unavailable")
	// errShuttingDown: the server is shutting down.
	errShuttingDown = errors.New("server shutting down")
)

// hub fans the node's one live subscription to the event log out to every
// open stream. It holds a single events.Store subscription (category run),
// started on the first stream from the read models' position, and offers
// each record to the subscribers of its run stream and of its
// organisation without ever blocking: a subscriber whose bounded buffer is
// full is dropped and told so (errSlowConsumer). Replay is not the hub's
// business: a session reads its history from the store itself.
//
// The hub owns three kinds of goroutines: its subscription loop and its
// writers (started lazily, ended by close) and, through track/untrack, the
// stream sessions (each ends when its socket does; close makes them end).
type hub struct {
	log    EventLog
	start  func() uint64 // where the live subscription starts
	buffer int
	logger *slog.Logger

	ctx    context.Context // the hub's lifetime: cancelled by close
	cancel context.CancelFunc
	down   chan struct{} // closed when close begins: sessions say goodbye (1001)
	loop   chan struct{} // closed when the subscription loop ends

	mu       sync.Mutex
	runs     map[string]map[*subscriber]struct{} // by run stream name
	orgs     map[string]map[*subscriber]struct{} // by organisation
	started  bool
	closing  bool
	failed   error
	sockets  map[*websocket.Conn]struct{}
	sessions sync.WaitGroup
	// position is the global position of the last record fanned out.
	position uint64
	// live counts the records fanned out, liveByOrg those of each
	// organisation: replays yield to the other organisations' live work
	// (see session.pace).
	live      uint64
	liveByOrg map[string]uint64

	// writers write the live phase of every socket (see writer); they
	// start with the subscription loop and end with the hub.
	writers    []*writer
	nextWriter int
	writing    sync.WaitGroup
}

func newHub(log EventLog, start func() uint64, buffer int, logger *slog.Logger) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{log: log, start: start, buffer: buffer, logger: logger, ctx: ctx, cancel: cancel,
		down: make(chan struct{}), loop: make(chan struct{}),
		runs: map[string]map[*subscriber]struct{}{}, orgs: map[string]map[*subscriber]struct{}{},
		sockets: map[*websocket.Conn]struct{}{}, liveByOrg: map[string]uint64{},
		writers: newWriters(writersPerCore * runtime.GOMAXPROCS(0))}
}

// subscriber is the hub's side of one open stream: the live records of
// one run stream (or of every run of one organisation) that its socket has
// not been sent yet, in a bounded queue. The hub only appends, and never
// waits: when the queue is full it drops the subscriber (err), and what
// was queued before the drop is still sent. Who writes the queue to the
// socket changes over the session's life: the session's own goroutine
// while it replays (w nil), then one of the hub's writers (w), and the
// session again when a write would block or a gap needs the store.
type subscriber struct {
	ss     *session
	stream string // run stream name, or "" for an organisation subscriber
	org    string

	mu    sync.Mutex
	queue []*liveItem // ring: n items from head; its capacity is the buffer
	head  int
	n     int
	err   error    // why the hub dropped it; nil while subscribed
	ctl   [][]byte // control frames (ping, pong) to write before the next data
	w     *writer  // the writer that owns the socket's live phase, or nil
	dirty bool     // in w's list of sockets with something to write
}

func newSubscriber(ss *session, stream, org string, buffer int) *subscriber {
	return &subscriber{ss: ss, stream: stream, org: org, queue: make([]*liveItem, buffer)}
}

// offer queues it, or reports false when the queue is full: s is then
// dropped (errSlowConsumer). It returns the writer to tell, when s became
// ready for it.
func (s *subscriber) offer(it *liveItem) (*writer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, true
	}
	if s.n == len(s.queue) {
		s.err = errSlowConsumer
		return s.readyLocked(), false
	}
	s.queue[(s.head+s.n)%len(s.queue)] = it
	s.n++
	return s.readyLocked(), true
}

// readyLocked marks s as having something for its writer, and returns
// the writer when it was not marked already.
func (s *subscriber) readyLocked() *writer {
	if s.w == nil || s.dirty {
		return nil
	}
	s.dirty = true
	return s.w
}

// takeLocked moves up to max queued items to dst.
func (s *subscriber) takeLocked(dst []*liveItem, max int) []*liveItem {
	for ; s.n > 0 && max > 0; max-- {
		dst = append(dst, s.queue[s.head])
		s.queue[s.head] = nil
		s.head = (s.head + 1) % len(s.queue)
		s.n--
	}
	return dst
}

// control queues a control frame for the socket: written by whoever
// writes to it next, between whole data frames.
func (s *subscriber) control(frame []byte) {
	s.mu.Lock()
	s.ctl = append(s.ctl, frame)
	w := s.readyLocked()
	s.mu.Unlock()
	if w != nil {
		w.add(s)
	}
}

// liveItem is one record on its way to every subscriber. Its message is
// built and encoded once, by the first session that needs it, into a
// WebSocket frame that every session writes as it is.
type liveItem struct {
	rec   events.Record
	once  sync.Once
	msg   StreamMessage
	frame []byte
	err   error
}

// prepared returns the item's message and its frame (nil for completed,
// which carries the session's artifacts and is encoded per session).
func (it *liveItem) prepared() (StreamMessage, []byte, error) {
	it.once.Do(func() {
		it.msg = newStreamMessage(it.rec)
		if it.msg.Type == MessageCompleted {
			return
		}
		it.frame, it.err = encodeFrame(it.msg)
	})
	return it.msg, it.frame, it.err
}

// subscribe registers s for its run stream (or, when s.stream is "", for
// every run event of s.org), with an empty queue; a subscriber the hub
// dropped may subscribe again. Records fanned out after subscribe returns
// reach it; a session reads what came before from the store. Returns
// errShuttingDown or errStreamFailed.
func (h *hub) subscribe(s *subscriber) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closing:
		return errShuttingDown
	case h.failed != nil:
		return h.failed
	}
	if !h.started {
		h.started = true
		// The start position is taken now, before the caller reads its
		// history: whatever it reads misses nothing the hub will not send.
		go h.run(h.ctx, h.start())
		for _, w := range h.writers {
			h.writing.Add(1)
			go func() {
				defer h.writing.Done()
				w.run(h.ctx)
			}()
		}
	}
	s.mu.Lock()
	clear(s.queue)
	s.head, s.n, s.err = 0, 0, nil
	s.mu.Unlock()
	m, key := h.orgs, s.org
	if s.stream != "" {
		m, key = h.runs, s.stream
	}
	if m[key] == nil {
		m[key] = map[*subscriber]struct{}{}
	}
	m[key][s] = struct{}{}
	return nil
}

// unsubscribe removes s; it is harmless after the hub dropped it.
func (h *hub) unsubscribe(s *subscriber) {
	if s == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(s)
}

func (h *hub) removeLocked(s *subscriber) {
	m, key := h.orgs, s.org
	if s.stream != "" {
		m, key = h.runs, s.stream
	}
	if set := m[key]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}

// writer returns the shared writer a new live socket goes to, in turn.
func (h *hub) writer() *writer {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextWriter++
	return h.writers[h.nextWriter%len(h.writers)]
}

// run is the hub's subscription loop: one store subscription from after,
// re-opened from the last record it fanned out when it breaks, until the
// hub closes or the store is closed.
func (h *hub) run(ctx context.Context, after uint64) {
	defer close(h.loop)
	wait := 100 * time.Millisecond
	for {
		var err error
		after, err = h.follow(ctx, after)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, events.ErrClosed) {
			h.logger.Error("stream hub: event store closed; streams end", slog.Any("error", err))
			h.fail(fmt.Errorf("%w: %w", errStreamFailed, err))
			return
		}
		h.logger.Warn("stream hub: subscription broke; resubscribing", slog.Uint64("after", after),
			slog.Any("error", err), slog.Duration("wait", wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// follow fans out the records of one subscription and returns the position
// of the last one with the error that ended it.
func (h *hub) follow(ctx context.Context, after uint64) (uint64, error) {
	sub, err := h.log.Subscribe(ctx, after, events.Filter{Categories: []string{events.CategoryRun}})
	if err != nil {
		return after, fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Close()
	for {
		item, err := sub.Next(ctx)
		if err != nil {
			return after, err
		}
		if item.CaughtUp {
			continue
		}
		h.publish(item.Record)
		after = item.Record.Position
	}
}

// publish offers rec to the subscribers of its stream and its organisation
// that want it. It never blocks: a subscriber with a full queue is
// dropped. Each writer with sockets made ready is told once.
func (h *hub) publish(rec events.Record) {
	it := &liveItem{rec: rec}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.position = rec.Position
	h.live++
	org := rec.Metadata.OrgID
	if org != "" {
		h.liveByOrg[org]++
	}
	for s := range h.runs[rec.Stream] {
		h.offerLocked(s, it)
	}
	if org != "" {
		for s := range h.orgs[org] {
			if s.ss.wants(it) {
				h.offerLocked(s, it)
			}
		}
	}
	for _, w := range h.writers {
		if len(w.staged) > 0 {
			w.add(w.staged...)
			clear(w.staged)
			w.staged = w.staged[:0]
		}
	}
}

func (h *hub) offerLocked(s *subscriber, it *liveItem) {
	w, ok := s.offer(it)
	if !ok {
		h.removeLocked(s)
	}
	if w != nil {
		h.stageLocked(w, s)
	}
}

// stageLocked notes that s is ready for w; publish tells w once at its
// end. A session's own writer (see newWriter) is told at once.
func (h *hub) stageLocked(w *writer, s *subscriber) {
	if w.shared {
		w.staged = append(w.staged, s)
		return
	}
	w.add(s)
}

// othersLive is how many records of organisations other than org the hub
// has fanned out so far.
func (h *hub) othersLive(org string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live - h.liveByOrg[org]
}

// fail drops every subscriber with err and refuses new ones.
func (h *hub) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = err
	for _, m := range []map[string]map[*subscriber]struct{}{h.runs, h.orgs} {
		for _, set := range m {
			for s := range set {
				s.mu.Lock()
				s.err = err
				w := s.readyLocked()
				s.mu.Unlock()
				if w != nil {
					w.add(s)
				}
			}
		}
	}
	clear(h.runs)
	clear(h.orgs)
}

// track registers an open socket with the hub, so close can end it.
// It reports false when the hub is closing: the caller says goodbye at once.
func (h *hub) track(c *websocket.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.sockets[c] = struct{}{}
	h.sessions.Add(1)
	return true
}

// untrack is the end of a session that track accepted.
func (h *hub) untrack(c *websocket.Conn) {
	h.mu.Lock()
	delete(h.sockets, c)
	h.mu.Unlock()
	h.sessions.Done()
}

// closeGrace is how long close lets sessions send 1001 and hear the
// client's reply before it cuts their connections.
const closeGrace = 2 * time.Second

// close ends every session (each sends 1001 "server shutting down"), waits
// for them, at most until ctx ends or closeGrace passes, then cuts the
// connections of those still open, and ends the subscription loop.
func (h *hub) close(ctx context.Context) {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return
	}
	h.closing = true
	started := h.started
	close(h.down)
	h.mu.Unlock()

	ended := make(chan struct{})
	go func() { // ends when the last session does: cut connections make sure of it
		h.sessions.Wait()
		close(ended)
	}()
	grace := time.NewTimer(closeGrace)
	defer grace.Stop()
	select {
	case <-ended:
	case <-grace.C:
	case <-ctx.Done():
	}
	h.cancel() // ends store reads of sessions still replaying
	h.mu.Lock()
	for c := range h.sockets {
		cut(c)
	}
	h.mu.Unlock()
	<-ended
	if started {
		<-h.loop
		h.writing.Wait()
	}
}

// cut closes a socket's TCP connection at once. A server-side connection
// is a fasthttp hijacked connection whose Close does nothing (fasthttp
// closes it after the handler), so cut closes the real one beneath.
func cut(c *websocket.Conn) {
	nc := c.NetConn()
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		nc = u.UnsafeConn()
	}
	_ = nc.Close()
}
