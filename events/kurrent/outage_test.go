package kurrent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/kurrent/kurrenttest"
)

// Down says the server is unreachable once a call found none, and clears
// by itself when the server is back (the store probes it): the node
// answers commands 503 meanwhile instead of letting each time out. An
// answer that refuses (a conflict) is an answer: the server is up.
func TestDownDuringOutage(t *testing.T) {
	srv, conn := kurrenttest.Start(t)
	s := mustOpen(t, conn+fastFail, Options{ProbeInterval: 50 * time.Millisecond})
	if _, err := s.Append(t.Context(), "run-o", events.ExpectNoStream, newEvent(t, events.Metadata{})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), "run-o", events.ExpectNoStream, newEvent(t, events.Metadata{})); err == nil {
		t.Fatal("second Append with ExpectNoStream = nil error, want a conflict")
	}
	if err := s.Down(); err != nil {
		t.Fatalf("Down after a conflict = %v, want nil (the server answered)", err)
	}

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	_, err := s.Append(ctx, "run-o", events.ExpectAny, newEvent(t, events.Metadata{}))
	cancel()
	if err == nil {
		t.Fatal("Append with the server stopped = nil error")
	}
	if s.Down() == nil {
		t.Fatalf("Down after Append failed with %v = nil, want the reason", err)
	}

	if err := srv.Listen(srv.Addr()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Down() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Down 10 s after the server came back = %v, want nil without any call of ours", s.Down())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.Append(t.Context(), "run-o", events.ExpectAny, newEvent(t, events.Metadata{})); err != nil {
		t.Fatalf("Append after the outage = %v", err)
	}
}

// A server that still answers pings but is slow to append is not taken
// for down, however long its appends take: the append waits and succeeds,
// and a call that runs out of its own time meanwhile says only that the
// server is slow.
func TestSlowServerIsNotDown(t *testing.T) {
	srv, conn := kurrenttest.Start(t)
	const downAfter = 100 * time.Millisecond
	s := mustOpen(t, conn, Options{DownAfter: downAfter, ProbeInterval: 20 * time.Millisecond})
	srv.Delay(8*downAfter, 0)

	// A call that gives up before the append is answered.
	short, cancel := context.WithTimeout(t.Context(), downAfter/2)
	_, err := s.Append(short, "run-slow", events.ExpectAny, newEvent(t, events.Metadata{}))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append with a deadline shorter than the server's delay = %v, want context.DeadlineExceeded", err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := s.Append(t.Context(), "run-slow", events.ExpectAny, newEvent(t, events.Metadata{}))
		done <- err
	}()
	for {
		if err := s.Down(); err != nil {
			t.Fatalf("Down while the server is slow but answers pings = %v, want nil", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Append on a slow server = %v, want it recorded", err)
			}
			if err := s.Down(); err != nil {
				t.Fatalf("Down after the slow append = %v, want nil", err)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A server that accepts calls and answers none (its connections open) is
// taken for down by a ping left unanswered after a call was: the call
// waiting meanwhile fails then with events.ErrUnavailable, long before its
// own deadline, the next fail at once the same way, and when the server
// answers again Down clears by itself.
func TestHungServerIsDownBeforeCallDeadline(t *testing.T) {
	srv, conn := kurrenttest.Start(t)
	const downAfter = 100 * time.Millisecond
	s := mustOpen(t, conn, Options{DownAfter: downAfter, ProbeInterval: 20 * time.Millisecond})
	srv.Delay(time.Hour, time.Hour)

	// The hung append stays inside the client until its deadline: the
	// prober asks again only then (one call at a time while down).
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := s.Append(ctx, "run-hung", events.ExpectAny, newEvent(t, events.Metadata{}))
	if !errors.Is(err, events.ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("Append to a hung server = %v (its own deadline: %v), want events.ErrUnavailable before the deadline", err, ctx.Err())
	}
	if err := s.Down(); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("Down after the hung append = %v, want events.ErrUnavailable", err)
	}
	_, err = s.ReadStream(ctx, "run-hung", events.Forwards, 0, 0)
	if !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("ReadStream while down = %v, want events.ErrUnavailable", err)
	}

	srv.Delay(0, 0)
	for deadline := time.Now().Add(time.Minute); s.Down() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Down a minute after the server answers again = %v, want nil", s.Down())
		}
	}
	if _, err := s.Append(t.Context(), "run-hung", events.ExpectAny, newEvent(t, events.Metadata{})); err != nil {
		t.Fatalf("Append after the server answers again = %v", err)
	}
}
