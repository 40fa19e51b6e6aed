package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
)

// The live phase of a stream is written by the hub's writers, a few per
// core, not by the session's own goroutine: a live event then costs each
// socket one write system call and nothing else (no goroutine woken per
// socket, no channel send, no write deadline set). The hub queues the
// event for every subscriber (subscriber.offer) and tells each writer
// once which of its sockets have something; the writer walks them and
// writes, for each, what is queued (several frames in one write) without
// ever waiting: a write the socket's buffer cannot take whole hands the
// socket back to its session, which finishes it with a blocking write
// under the write timeout and hands the socket back once its queue is
// empty. The session's goroutine replays, pings, closes, and waits for
// the client, the server or its writer in between.

// writersPerCore is how many shared writers the hub runs per core.
const writersPerCore = 2

// Why a writer hands a socket back to its session, besides an error that
// ends it (the client gone, errRunEnded, the hub's drop).
var (
	// errBlocked: the socket took part of a write; the session writes the
	// rest, waiting, and what is queued after it.
	errBlocked = errors.New("write would block")
	// errNeedsStore: a live event of a run stream came after a gap; the
	// session reads the events between from the store (session.fill).
	errNeedsStore = errors.New("gap to fill from the store")
)

// pingFrame is a WebSocket ping from the server, with no payload.
var pingFrame = []byte{0x80 | websocket.PingMessage, 0}

// controlFrame frames a control message (payload at most 125 bytes).
func controlFrame(op int, payload []byte) []byte {
	return append([]byte{0x80 | byte(op), byte(len(payload))}, payload...)
}

// writer writes the live phase of its sockets. Shared writers (the hub's)
// write without waiting and need each socket's raw connection; a socket
// without one gets a writer of its own, which may wait.
type writer struct {
	shared bool
	wake   chan struct{} // capacity 1: something was added to ready

	mu    sync.Mutex
	ready []*subscriber // sockets with something to write
	spare []*subscriber // the writer's goroutine's

	staged []*subscriber // made ready by the publish under way; hub.mu guards it

	items []*liveItem // scratch of the writer's goroutine
	buf   []byte
}

func newWriter(shared bool) *writer {
	return &writer{shared: shared, wake: make(chan struct{}, 1)}
}

func newWriters(n int) []*writer {
	ws := make([]*writer, max(n, 1))
	for i := range ws {
		ws[i] = newWriter(true)
	}
	return ws
}

// add tells w that subs have something to write.
func (w *writer) add(subs ...*subscriber) {
	w.mu.Lock()
	w.ready = append(w.ready, subs...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes the ready sockets until ctx ends.
func (w *writer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		for { // two lists take turns: one is written while the hub fills the other
			w.mu.Lock()
			batch := w.ready
			w.ready = w.spare
			w.mu.Unlock()
			for _, s := range batch {
				w.write(s)
			}
			clear(batch)
			w.spare = batch[:0]
			if len(batch) == 0 {
				break
			}
		}
	}
}

// write sends what s has queued (control frames, then up to maxBurst
// events) in one write, and hands s back to its session when the write
// was cut short, failed, ended the stream, or found a gap; or when the hub
// dropped s and its queue is empty.
func (w *writer) write(s *subscriber) {
	ss := s.ss
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	s.mu.Lock()
	s.dirty = false
	if s.w != w {
		s.mu.Unlock()
		return
	}
	items := s.takeLocked(w.items[:0], maxBurst)
	ss.ctl = append(ss.ctl, s.ctl...)
	clear(s.ctl)
	s.ctl = s.ctl[:0]
	var dropped error
	if s.n == 0 {
		dropped = s.err
	}
	s.mu.Unlock()

	why := ss.handleAll(items, false)
	clear(items)
	w.items = items[:0]
	done, err := ss.writeNow(&w.buf)
	switch {
	case err != nil:
		why = err
	case why == nil && !done:
		why = errBlocked
	case why == nil:
		why = dropped
	}
	s.mu.Lock()
	var again *writer
	if why != nil {
		if s.w == w {
			s.w, ss.handback = nil, why
			select {
			case ss.back <- struct{}{}:
			default:
			}
		}
	} else if s.n > 0 || s.err != nil {
		again = s.readyLocked()
	}
	s.mu.Unlock()
	if again != nil {
		again.add(s)
	}
}

// handleAll handles live items in order; mayRead lets it read the store
// (fill). On errNeedsStore the items from the one after the gap are kept
// in ss.held for the session.
func (ss *session) handleAll(items []*liveItem, mayRead bool) error {
	for i, it := range items {
		if err := ss.handle(it, mayRead); err != nil {
			if errors.Is(err, errNeedsStore) {
				ss.held = append(ss.held[:0], items[i:]...)
			}
			return err
		}
	}
	return nil
}

// handOffLocked gives the socket's live phase to its writer; s.mu is held.
// It returns the writer to tell when something is waiting already.
func (ss *session) handOffLocked() *writer {
	s := ss.sub
	s.w, s.dirty = ss.writer, false
	if s.n > 0 || len(s.ctl) > 0 || s.err != nil {
		return s.readyLocked()
	}
	return nil
}

// reclaim takes the socket back from its writer, waiting for a write
// under way to end: the session writes alone from then on.
func (ss *session) reclaim() {
	ss.sub.mu.Lock()
	ss.sub.w = nil
	ss.sub.mu.Unlock()
	ss.wmu.Lock() // a write under way ends before the lock is ours
	ss.wmu.Unlock()
}

// follow hands the socket to its writer, which sends the live items with
// handle, and waits until the client, the server or the writer ends the
// stream; it pings meanwhile. When the writer hands the socket back
// (errBlocked, errNeedsStore) the session writes, waiting, until the queue
// is empty, then hands it over again. Once the hub dropped the
// subscription, what it had queued is still sent: it is complete and in
// order up to the drop.
func (ss *session) follow(handle func(it *liveItem, mayRead bool) error) error {
	ss.handle = handle
	s := ss.sub
	s.mu.Lock()
	w := ss.handOffLocked()
	s.mu.Unlock()
	if w != nil {
		w.add(s)
	}
	for {
		select {
		case <-ss.back:
			ss.wmu.Lock() // the writer's last touches of the session are over
			why := ss.handback
			ss.wmu.Unlock()
			if !errors.Is(why, errBlocked) && !errors.Is(why, errNeedsStore) {
				return why
			}
			if err := ss.drain(); err != nil {
				return err
			}
		case <-ss.h.down:
			ss.reclaim()
			return errShuttingDown
		case <-ss.gone:
			ss.reclaim()
			return errClientGone
		case <-ss.ping.C:
			s.control(pingFrame)
		}
	}
}

// drain writes, from the session's goroutine and waiting on the socket,
// the items its writer left (ss.held) and those queued, until the queue
// is empty; then it hands the socket to the writer again. It returns the
// error that ends the stream, if any.
func (ss *session) drain() error {
	s := ss.sub
	for {
		if err := ss.interrupted(); err != nil {
			return err
		}
		held := ss.held
		ss.held = nil
		err := ss.handleAll(held, true)
		clear(held) // handled: the items are the hub's to forget
		if err != nil {
			return err
		}
		if err := ss.flush(); err != nil {
			return err
		}
		s.mu.Lock()
		ss.held = s.takeLocked(held[:0], maxBurst)
		if len(ss.held) == 0 && len(s.ctl) == 0 {
			if err := s.err; err != nil {
				s.mu.Unlock()
				return err
			}
			w := ss.handOffLocked()
			s.mu.Unlock()
			if w != nil {
				w.add(s)
			}
			return nil
		}
		s.mu.Unlock()
	}
}

// takeControl moves the control frames queued for the socket to those
// the session writes next.
func (ss *session) takeControl() {
	s := ss.sub
	s.mu.Lock()
	ss.ctl = append(ss.ctl, s.ctl...)
	clear(s.ctl)
	s.ctl = s.ctl[:0]
	s.mu.Unlock()
}

// data is what the session has to write: the rest of a write cut short,
// the control frames, then the pending frames. One frame is returned as
// it is; several are copied into buf, to go in one write.
func (ss *session) data(buf []byte) []byte {
	if len(ss.rest) == 0 && len(ss.ctl) == 0 && len(ss.pending) == 1 {
		return ss.pending[0]
	}
	buf = append(buf[:0], ss.rest...)
	for _, f := range ss.ctl {
		buf = append(buf, f...)
	}
	for _, f := range ss.pending {
		buf = append(buf, f...)
	}
	return buf
}

// written forgets what data returned.
func (ss *session) written() {
	ss.rest = nil
	clear(ss.ctl)
	ss.ctl = ss.ctl[:0]
	clear(ss.pending)
	ss.pending, ss.pendingBytes = ss.pending[:0], 0
}

func (ss *session) hasData() bool {
	return len(ss.rest) > 0 || len(ss.ctl) > 0 || len(ss.pending) > 0
}

// writeNow writes what the session has, without waiting when the socket
// has a raw connection; done reports whether all of it was written (the
// rest is kept in ss.rest). buf is the writer's scratch.
func (ss *session) writeNow(buf *[]byte) (done bool, err error) {
	if !ss.hasData() {
		return true, nil
	}
	if ss.raw == nil { // a writer of its own: it may wait
		return true, ss.flush()
	}
	single := len(ss.rest) == 0 && len(ss.ctl) == 0 && len(ss.pending) == 1
	data := ss.data(*buf)
	if !single {
		*buf = data[:0] // the scratch, grown
	}
	n, err := writeNonblocking(ss.raw, data)
	if err != nil {
		ss.written()
		return false, fmt.Errorf("%w: %w", errClientGone, err)
	}
	if n < len(data) {
		rest := append([]byte(nil), data[n:]...)
		ss.written()
		ss.rest = rest
		return false, nil
	}
	ss.written()
	return true, nil
}

// flush writes what the session has in one write, waiting at most the
// write timeout; a failed write means the client is gone. Only the
// session's goroutine calls it, while no writer owns the socket.
func (ss *session) flush() error {
	ss.takeControl()
	if !ss.hasData() {
		return nil
	}
	defer ss.written()
	if err := ss.out.SetWriteDeadline(time.Now().Add(ss.st.cfg.WriteTimeout)); err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	// One buffer, not a writev of the frames: writev through a narrow
	// socket buffer let a reading client fall behind
	// (TestRunStreamSlowClient).
	if _, err := ss.out.Write(ss.data(nil)); err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	// The deadline bounds this write only: left set, it would fail the
	// writer's writes once it passed (the runtime checks it before every
	// write to the socket, raw ones too).
	if err := ss.out.SetWriteDeadline(time.Time{}); err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return nil
}

// rawConn returns the raw connection beneath a socket, or nil when it has
// none (the socket then gets a writer of its own).
func rawConn(nc net.Conn) syscall.RawConn {
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		nc = u.UnsafeConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok || !canWriteNonblocking {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
