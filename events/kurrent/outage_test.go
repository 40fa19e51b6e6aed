package kurrent

import (
	"context"
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
