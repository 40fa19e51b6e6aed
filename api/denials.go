package api

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
)

// Refused requests must cost an attacker more than they cost the log:
// failed authentications are throttled per client address before any
// token is verified, and denied attempts are recorded once per principal,
// address and window, with a count, rather than once each.

// Defaults of the denial defences.
const (
	defaultAuthFailuresLimit = 20          // failed authentications per address and window
	defaultDeniedWindow      = time.Minute // one AccessDenied per principal, address and window
)

// failThrottle counts failed authentications per client address in a
// fixed window; an address over the limit is refused before its
// credentials are looked at. Successful requests cost nothing, so many
// users behind one address are not throttled by each other's successes.
type failThrottle struct {
	max    int
	window time.Duration

	mu    sync.Mutex
	addrs map[string]*failWindow
	sweep int
}

type failWindow struct {
	n     int
	reset time.Time
}

func newFailThrottle(max int, window time.Duration) *failThrottle {
	return &failThrottle{max: max, window: window, addrs: map[string]*failWindow{}, sweep: 1024}
}

// blocked reports whether addr is over its limit, and for how long yet.
func (t *failThrottle) blocked(addr string, now time.Time) (time.Duration, bool) {
	if t.max < 0 {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.addrs[addr]
	if !ok || now.After(w.reset) || w.n < t.max {
		return 0, false
	}
	return w.reset.Sub(now), true
}

// failed counts one failed authentication of addr.
func (t *failThrottle) failed(addr string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.addrs) >= t.sweep {
		for a, w := range t.addrs {
			if now.After(w.reset) {
				delete(t.addrs, a)
			}
		}
		t.sweep = max(1024, 2*len(t.addrs))
	}
	w, ok := t.addrs[addr]
	if !ok || now.After(w.reset) {
		w = &failWindow{reset: now.Add(t.window)}
		t.addrs[addr] = w
	}
	w.n++
}

// throttleAuth refuses a client address that has failed to authenticate
// too often in the window, before its credential is verified, and counts
// the failures of the rest of the chain.
func (s *Server) throttleAuth(c *fiber.Ctx) error {
	now := time.Now()
	if wait, ok := s.authFails.blocked(c.IP(), now); ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait.Seconds())+1))
		return &Error{Code: CodeRateLimited, Message: "too many failed authentications from this address; retry later"}
	}
	err := c.Next()
	if err != nil {
		if status, _ := classify(err); status == fiber.StatusUnauthorized {
			s.authFails.failed(c.IP(), now)
		}
	}
	return err
}

// denialKey groups denied attempts: one principal (or prober) from one
// address, refused with one status and reason for one resource.
type denialKey struct {
	stream, org, user, addr, resource, reason string
	status                                    int
}

// denialLog records AccessDenied events, at most one per key and window:
// the first attempt at once, the others as one event with their count when
// the window closes.
type denialLog struct {
	window time.Duration
	append func(ctx context.Context, stream string, ev events.Event) (uint64, error)
	log    *slog.Logger

	mu     sync.Mutex
	open   map[denialKey]*denialWindow
	closed bool
	wg     sync.WaitGroup // flushes under way
}

type denialWindow struct {
	last  events.AccessDenied // details of the latest attempt
	md    events.Metadata
	extra int // attempts after the first, not yet recorded
	timer *time.Timer
}

// record records one denied attempt: it appends now when it opens a
// window and returns the event's position, else counts it for the window's
// summary and returns 0.
func (d *denialLog) record(ctx context.Context, k denialKey, ev events.AccessDenied, md events.Metadata) uint64 {
	if !d.count(k, ev, md, false) {
		return 0
	}
	ev.Count = 1
	return d.write(ctx, k.stream, ev, md)
}

// later counts one denied attempt for its window's summary only, so that
// nothing is appended while the request is answered (a probe must not be
// able to see or time its own record).
func (d *denialLog) later(k denialKey, ev events.AccessDenied, md events.Metadata) {
	d.count(k, ev, md, true)
}

// count adds an attempt to k's window, opening it when there is none; it
// reports whether it opened one whose first attempt the caller records.
func (d *denialLog) count(k denialKey, ev events.AccessDenied, md events.Metadata, deferFirst bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	if w, ok := d.open[k]; ok {
		w.extra++
		w.last, w.md = ev, md
		return false
	}
	w := &denialWindow{last: ev, md: md}
	if deferFirst {
		w.extra = 1
	}
	d.open[k] = w
	d.wg.Add(1)
	w.timer = time.AfterFunc(d.window, func() {
		defer d.wg.Done()
		d.flush(k)
	})
	return !deferFirst
}

// flush closes k's window, recording the attempts it counted.
func (d *denialLog) flush(k denialKey) {
	d.mu.Lock()
	w, ok := d.open[k]
	delete(d.open, k)
	d.mu.Unlock()
	if !ok || w.extra == 0 {
		return
	}
	ev := w.last
	ev.Count = w.extra
	ctx, cancel := context.WithTimeout(context.Background(), auditAppendWait)
	defer cancel()
	d.write(ctx, k.stream, ev, w.md)
}

func (d *denialLog) write(ctx context.Context, stream string, p events.AccessDenied, md events.Metadata) uint64 {
	ev, err := events.New(&p, md)
	var pos uint64
	if err == nil {
		pos, err = d.append(ctx, stream, ev)
	}
	if err != nil {
		d.log.ErrorContext(ctx, "record access denied", slog.Any("metadata", md), slog.Any("error", err))
	}
	return pos
}

// close records every open window's count now and stops recording.
func (d *denialLog) close() {
	d.mu.Lock()
	d.closed = true
	var keys []denialKey
	for k, w := range d.open {
		if w.timer.Stop() {
			keys = append(keys, k)
		}
	}
	d.mu.Unlock()
	for _, k := range keys {
		d.flush(k)
		d.wg.Done()
	}
	d.wg.Wait()
}
