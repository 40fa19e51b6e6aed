package kurrent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/eventstest"
	"github.com/spectra-fab/spectra/events/kurrent/kurrenttest"
)

var quiet = slog.New(slog.DiscardHandler)

// fastFail makes a client give up discovery quickly when nothing listens.
const fastFail = "&maxDiscoverAttempts=2&discoveryInterval=20"

func mustOpen(t testing.TB, conn string, o Options) *Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, conn, o)
	if err != nil {
		t.Fatalf("Open(%s) = %v", conn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	var servers sync.Map // events.Store → *kurrenttest.Server
	eventstest.Run(t, eventstest.Harness{
		Open: func(t *testing.T) events.Store {
			srv, conn := kurrenttest.Start(t)
			s := mustOpen(t, conn, Options{})
			servers.Store(events.Store(s), srv)
			return s
		},
		// Reopen restarts the server too: the data survives, the new
		// store and client connect afresh.
		Reopen: func(t *testing.T, s events.Store) events.Store {
			v, _ := servers.Load(s)
			srv := v.(*kurrenttest.Server)
			s.Close()
			if err := srv.Restart(); err != nil {
				t.Fatalf("Restart = %v", err)
			}
			r := mustOpen(t, srv.ConnString(), Options{})
			servers.Store(events.Store(r), srv)
			return r
		},
	})
}

// TestConformanceServer runs the suite against a real KurrentDB node or
// cluster, each store in a namespace of its own so it starts empty.
func TestConformanceServer(t *testing.T) {
	url := os.Getenv("KURRENTDB_URL")
	if url == "" {
		t.Skip("KURRENTDB_URL is not set (e.g. esdb://localhost:2113?tls=false): no real KurrentDB to test against")
	}
	namespaces := sync.Map{} // events.Store → namespace
	eventstest.Run(t, eventstest.Harness{
		Open: func(t *testing.T) events.Store {
			b := make([]byte, 6)
			rand.Read(b)
			ns := "t" + hex.EncodeToString(b) + "_"
			s := mustOpen(t, url, Options{Namespace: ns})
			namespaces.Store(events.Store(s), ns)
			return s
		},
		Reopen: func(t *testing.T, s events.Store) events.Store {
			ns, _ := namespaces.Load(s)
			s.Close()
			r := mustOpen(t, url, Options{Namespace: ns.(string)})
			namespaces.Store(events.Store(r), ns)
			return r
		},
	})
}

func newEvent(t testing.TB, md events.Metadata) events.Event {
	t.Helper()
	ev, err := events.New(events.RunQueued{JobID: "job-1", Queue: "ion"}, md)
	if err != nil {
		t.Fatalf("events.New: %v", err)
	}
	return ev
}

func next(t testing.TB, sub events.Subscription) events.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Next = %v", err)
	}
	return it
}

// TestCreatedMissing: an event without the "created" system metadata is
// read with a zero Time instead of ending the process.
func TestCreatedMissing(t *testing.T) {
	srv, conn := kurrenttest.Start(t)
	s := mustOpen(t, conn, Options{})
	ctx := t.Context()
	ev := newEvent(t, events.Metadata{OrgID: "org-a"})
	if _, err := s.Append(ctx, "run-c", events.ExpectNoStream, ev); err != nil {
		t.Fatalf("Append = %v", err)
	}
	srv.OmitCreated(true)
	recs, err := s.ReadStream(ctx, "run-c", events.Forwards, 0, 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ReadStream = %d records, %v; want 1", len(recs), err)
	}
	if !recs[0].Time.IsZero() || recs[0].ID != ev.ID || recs[0].Metadata.OrgID != "org-a" {
		t.Errorf("record = %+v, want %s with a zero Time", recs[0], ev.ID)
	}
	sub, err := s.Subscribe(ctx, 0, events.Filter{})
	if err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	defer sub.Close()
	if it := next(t, sub); it.Record.ID != ev.ID || !it.Record.Time.IsZero() {
		t.Errorf("subscribed item = %+v, want %s with a zero Time", it, ev.ID)
	}
	srv.OmitCreated(false)
	recs, _ = s.ReadStream(ctx, "run-c", events.Forwards, 0, 0)
	if recs[0].Time.IsZero() || time.Since(recs[0].Time) > time.Minute {
		t.Errorf("Time with created = %v, want about now", recs[0].Time)
	}
}

// TestCreatedMissingWithoutGuard shows the trap the guard prevents: the
// client itself ends the process (log.Fatalf) on such an event. It runs
// the read in a child process.
func TestCreatedMissingWithoutGuard(t *testing.T) {
	if os.Getenv("KURRENT_CREATED_CHILD") == "1" {
		guardCreated.Store(false)
		srv, conn := kurrenttest.Start(t)
		s := mustOpen(t, conn, Options{})
		if _, err := s.Append(t.Context(), "run-c", events.ExpectNoStream, newEvent(t, events.Metadata{})); err != nil {
			t.Fatalf("Append = %v", err)
		}
		srv.OmitCreated(true)
		s.ReadStream(t.Context(), "run-c", events.Forwards, 0, 0)
		t.Fatal("the client survived an event without created")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCreatedMissingWithoutGuard$")
	cmd.Env = append(os.Environ(), "KURRENT_CREATED_CHILD=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "Failed to parse created date") {
		t.Fatalf("child = %v, output:\n%s\nwant exit status 1 from the client's log.Fatalf", err, out)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestFirstConnectionFails: with no server, Open fails (the client closed
// itself for good); once a server listens, a new Open works.
func TestFirstConnectionFails(t *testing.T) {
	addr := freeAddr(t)
	conn := "esdb://" + addr + "?tls=false" + fastFail
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if s, err := Open(ctx, conn, Options{Logger: quiet}); err == nil {
		s.Close()
		t.Fatal("Open with no server = nil error, want an error")
	}
	srv := kurrenttest.New()
	if err := srv.Listen(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	s := mustOpen(t, conn, Options{})
	if _, err := s.Append(ctx, "run-1", events.ExpectNoStream, newEvent(t, events.Metadata{})); err != nil {
		t.Fatalf("Append after the server came up = %v", err)
	}
}

// TestClientClosedItselfIsReplaced: the server is away for longer than the
// client's discovery, so the client closes itself for good; the store
// replaces it and works again when the server is back.
func TestClientClosedItselfIsReplaced(t *testing.T) {
	srv, _ := kurrenttest.Start(t)
	s := mustOpen(t, srv.ConnString()+fastFail, Options{})
	ctx := t.Context()
	if _, err := s.Append(ctx, "run-1", events.ExpectNoStream, newEvent(t, events.Metadata{})); err != nil {
		t.Fatalf("Append = %v", err)
	}
	addr := srv.Addr()
	srv.Stop()
	for i := range 3 {
		if _, err := s.Append(ctx, "run-1", events.ExpectRevision(0), newEvent(t, events.Metadata{})); err == nil {
			t.Fatalf("Append %d with the server down = nil error", i)
		}
	}
	if err := srv.Listen(addr); err != nil {
		t.Fatal(err)
	}
	// While the store takes the server for down, calls fail at once (one
	// goes in at a time, often the prober's): a caller retries after the
	// 503. The prober finds the server back without traffic.
	for deadline := time.Now().Add(10 * time.Second); s.Down() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the store still takes the server for down 10 s after it came back: %v", s.Down())
		}
	}
	res, err := s.Append(ctx, "run-1", events.ExpectRevision(0), newEvent(t, events.Metadata{}))
	if err != nil || res.Revision != 1 {
		t.Fatalf("Append after the server came back = %+v, %v; want revision 1", res, err)
	}
}

// TestStartExclusiveReadInclusive pins the protocol's asymmetry down on the
// raw client, and checks the store hides it: after is exclusive for both.
func TestStartExclusiveReadInclusive(t *testing.T) {
	srv, conn := kurrenttest.Start(t)
	s := mustOpen(t, conn, Options{})
	ctx := t.Context()
	var res []events.AppendResult
	for i := range 3 {
		r, err := s.Append(ctx, "run-x", events.ExpectAny, newEvent(t, events.Metadata{RequestID: fmt.Sprint(i)}))
		if err != nil {
			t.Fatalf("Append = %v", err)
		}
		res = append(res, r)
	}
	p := res[1].Position

	cfg, err := esdb.ParseConnectionString(srv.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = esdb.NoopLogging()
	client, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rs, err := client.ReadAll(ctx, esdb.ReadAllOptions{From: esdb.Position{Commit: p, Prepare: p}}, 1)
	if err != nil {
		t.Fatalf("client ReadAll = %v", err)
	}
	ev, err := rs.Recv()
	rs.Close()
	if err != nil || ev.Event.Position.Commit != p {
		t.Fatalf("client ReadAll from %d first = %v, %v; want the event at %d (reads are inclusive)", p, ev, err, p)
	}
	cs, err := client.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: esdb.Position{Commit: p, Prepare: p}})
	if err != nil {
		t.Fatalf("client SubscribeToAll = %v", err)
	}
	e := cs.Recv()
	cs.Close()
	if e.EventAppeared == nil || e.EventAppeared.Event.Position.Commit != res[2].Position {
		t.Fatalf("client subscription from %d first = %+v; want the event at %d (subscriptions are exclusive)", p, e, res[2].Position)
	}

	recs, err := s.ReadAll(ctx, p, events.Filter{}, 0)
	if err != nil || len(recs) != 1 || recs[0].Position != res[2].Position {
		t.Fatalf("store ReadAll(after %d) = %v, %v; want only the event at %d", p, recs, err, res[2].Position)
	}
	sub, err := s.Subscribe(ctx, p, events.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if it := next(t, sub); it.Record.Position != res[2].Position {
		t.Fatalf("store Subscribe(after %d) first = %+v; want the event at %d", p, it, res[2].Position)
	}
	if it := next(t, sub); !it.CaughtUp {
		t.Fatalf("then %+v, want caught-up", it)
	}
}

// TestSubscriptionSurvivesRestart: the server restarts twice under a live
// subscription, with events appended while it is down to the subscriber;
// the subscription resumes with no gap, no duplicate and one caught-up.
func TestSubscriptionSurvivesRestart(t *testing.T) {
	srv, conn := kurrenttest.Start(t)
	o := Options{RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}
	s := mustOpen(t, conn, o)
	ctx := t.Context()
	var want []string
	appendSome := func(n int) {
		t.Helper()
		for range n {
			ev := newEvent(t, events.Metadata{OrgID: "org-a"})
			// The first append after a restart may meet the old
			// connection; a retry with the same id is idempotent.
			var err error
			for range 50 {
				if _, err = s.Append(ctx, "run-r", events.ExpectAny, ev); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("Append = %v", err)
			}
			want = append(want, ev.ID)
		}
	}
	appendSome(5)
	sub, err := s.Subscribe(ctx, 0, events.Filter{Categories: []string{"run"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []string
	caughtUp := 0
	take := func(n int) {
		t.Helper()
		for len(got) < n {
			it := next(t, sub)
			if it.CaughtUp {
				caughtUp++
				continue
			}
			got = append(got, it.Record.ID)
		}
	}
	take(5)
	for range 2 {
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		// A second store writes while the first one's subscription is
		// still reconnecting.
		w := mustOpen(t, conn, Options{})
		for range 3 {
			ev := newEvent(t, events.Metadata{})
			if _, err := w.Append(ctx, "run-r", events.ExpectAny, ev); err != nil {
				t.Fatalf("Append by the second store = %v", err)
			}
			want = append(want, ev.ID)
		}
		w.Close()
		appendSome(2)
		take(len(want))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("subscription got %v,\nwant %v", got, want)
	}
	if caughtUp != 1 {
		t.Errorf("caught-up items = %d, want 1", caughtUp)
	}
	ctxQ, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if it, err := sub.Next(ctxQ); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next after everything = %+v, %v; want nothing more", it, err)
	}
}

// TestConnectionStrings: the schemes and forms a deployment uses, against
// the double (its gossip answers with itself as the leader).
func TestConnectionStrings(t *testing.T) {
	srv, _ := kurrenttest.Start(t)
	addr := srv.Addr()
	dead := freeAddr(t)
	for _, conn := range []string{
		"esdb://" + addr + "?tls=false",
		"kurrentdb://" + addr + "?tls=false",
		"kurrentdb+discover://" + addr + "?tls=false",
		"esdb://" + dead + "," + addr + "?tls=false", // gossip seeds, one down
	} {
		t.Run(conn, func(t *testing.T) {
			s := mustOpen(t, conn, Options{})
			if _, err := s.ReadAll(t.Context(), 0, events.Filter{}, 0); err != nil {
				t.Fatalf("ReadAll = %v", err)
			}
		})
	}
	for _, conn := range []string{"http://" + addr, "kurrentdb://admin:s3cret@host:notaport?tls=false", "esdb://"} {
		_, err := Open(t.Context(), conn, Options{Logger: quiet})
		if err == nil {
			t.Errorf("Open(%q) = nil error, want an error", conn)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open error %q shows the password", err)
		}
	}
}

// TestNamespace: stores in different namespaces of one server see only
// their own streams.
func TestNamespace(t *testing.T) {
	_, conn := kurrenttest.Start(t)
	a := mustOpen(t, conn, Options{Namespace: "a_"})
	b := mustOpen(t, conn, Options{Namespace: "b_"})
	ctx := t.Context()
	ev := newEvent(t, events.Metadata{})
	if _, err := a.Append(ctx, "run-1", events.ExpectNoStream, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, "run-1", events.ExpectNoStream, newEvent(t, events.Metadata{})); err != nil {
		t.Fatalf("Append of the same stream name in b = %v", err)
	}
	recs, err := a.ReadAll(ctx, 0, events.Filter{}, 0)
	if err != nil || len(recs) != 1 || recs[0].ID != ev.ID || recs[0].Stream != "run-1" {
		t.Fatalf("a.ReadAll = %+v, %v; want only %s in run-1", recs, err, ev.ID)
	}
	sub, err := a.Subscribe(ctx, 0, events.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if it := next(t, sub); it.Record.ID != ev.ID {
		t.Fatalf("a's subscription first = %+v, want %s", it, ev.ID)
	}
	if it := next(t, sub); !it.CaughtUp {
		t.Fatalf("then %+v, want caught-up", it)
	}
}

// TestCloseDuringOutage: calls wait inside the client while it looks for
// a node (its discovery ignores contexts and, when it fails, leaves the
// other waiting calls blocked for good); closing the store then must not
// close the client under them (that panics), and each call must still
// return when its context ends.
func TestCloseDuringOutage(t *testing.T) {
	srv, conn := kurrenttest.Start(t)
	s := mustOpen(t, conn+"&maxDiscoverAttempts=10&discoveryInterval=50", Options{})
	srv.Stop()
	// The first failure makes the client rediscover on the next call.
	if _, err := s.Append(t.Context(), "run-1", events.ExpectAny, newEvent(t, events.Metadata{})); err == nil {
		t.Fatal("Append with the server down = nil error")
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := s.Append(ctx, "run-1", events.ExpectAny, newEvent(t, events.Metadata{}))
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	for range 4 {
		select {
		case err := <-errs:
			if err == nil {
				t.Error("Append with the server down = nil error")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Append did not return after its context ended")
		}
	}
}

// TestGoroutinesEnd: a store that was used and closed, with its server
// stopped, leaves no goroutine behind.
func TestGoroutinesEnd(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv := kurrenttest.New()
		if err := srv.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		defer srv.Stop()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		s, err := Open(ctx, srv.ConnString(), Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Append(ctx, "run-g", events.ExpectNoStream, newEvent(t, events.Metadata{})); err != nil {
			t.Fatal(err)
		}
		sub, err := s.Subscribe(ctx, 0, events.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		next(t, sub)
		next(t, sub)
		// One subscription is closed, the other ends with the store.
		if _, err := s.Subscribe(ctx, 0, events.Filter{}); err != nil {
			t.Fatal(err)
		}
		sub.Close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
