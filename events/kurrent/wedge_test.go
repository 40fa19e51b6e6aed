package kurrent

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/kurrent/kurrenttest"
)

// The KurrentDB client can keep a call for ever: a client whose discovery
// fails stops its connection loop without closing its request channel
// (esdb/impl.go, connectionStateMachine), so a call that asked it for a
// connection meanwhile, or reports an error to it, blocks for ever
// (getConnectionHandle, handleError). Calls that reach the client in the
// moment between the server going away and the store knowing it is down
// get stuck so. Such a call must not keep the store down once the server
// is back: it used to hold the one place the store keeps for a call
// while the server is down, the prober found the client busy at every
// turn, and every call failed at once with the old reason for ever (CI:
// TestKurrentDBOutage, one run "running" 2 min after the server came
// back).
func TestCallStuckInClientDoesNotKeepStoreDown(t *testing.T) {
	srv, conn := kurrenttest.Start(t)
	s := mustOpen(t, conn+fastFail, Options{ProbeInterval: 20 * time.Millisecond, DownAfter: 100 * time.Millisecond,
		CallTimeout: time.Second})
	if _, err := s.Append(t.Context(), "run-w", events.ExpectNoStream, newEvent(t, events.Metadata{})); err != nil {
		t.Fatal(err)
	}
	// A call inside the current client that does not return (until the
	// test ends: the real one never does).
	stuck, inside := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.callOnce(context.Background(), func(*esdb.Client) error {
			close(inside)
			<-stuck
			return nil
		})
	}()
	t.Cleanup(func() { close(stuck); wg.Wait() })
	<-inside

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	_, err := s.Append(ctx, "run-w", events.ExpectRevision(0), newEvent(t, events.Metadata{}))
	cancel()
	if !errors.Is(s.Down(), events.ErrUnavailable) {
		t.Fatalf("Down after Append with the server stopped failed with %v = %v, want events.ErrUnavailable", err, s.Down())
	}
	if err := srv.Listen(srv.Addr()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); s.Down() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the store still takes the server for down 10 s after it came back: %v", s.Down())
		}
	}
	res, err := s.Append(t.Context(), "run-w", events.ExpectRevision(0), newEvent(t, events.Metadata{}))
	if err != nil || res.Revision != 1 {
		t.Fatalf("Append after the server came back = %+v, %v; want revision 1", res, err)
	}
}
