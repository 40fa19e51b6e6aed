package node_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events/kurrent/kurrenttest"
	"github.com/spectra-fab/spectra/node"
)

// The KurrentDB server (the protocol double) stops for 10 s while 10 runs
// are in flight: commands answer 503 with Retry-After meanwhile, runs stop
// appending (their actors back off) and, when it returns, every run
// completes with nothing lost and nothing recorded twice. The same as
// TestExternalNATSOutage, for the other log store.
func TestKurrentDBOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10 s store outage; skipped with -short")
	}
	srv, conn := kurrenttest.Start(t)
	n, create := startOutageNode(t, node.Config{EventStore: conn}, 100)
	var runs []string
	for range 10 {
		status, _, body := create()
		if status != 201 {
			t.Fatalf("create = %d %v, want 201", status, body)
		}
		runs = append(runs, body["run_id"].(string))
	}
	time.Sleep(time.Second) // the runs are running

	srv.Stop()
	stopped := time.Now()
	for {
		status, retry, body := create()
		if status == 503 {
			if secs, err := strconv.Atoi(retry); err != nil || secs <= 0 {
				t.Errorf("503 with Retry-After %q, want seconds", retry)
			}
			t.Logf("first 503 %v after the server stopped", time.Since(stopped).Round(time.Millisecond))
			break
		}
		if time.Since(stopped) > 20*time.Second { // a create sent before the store knew may wait out its deadline
			t.Fatalf("create during the outage = %d %v, want 503", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(max(10*time.Second-time.Since(stopped), 0))
	if err := srv.Listen(srv.Addr()); err != nil {
		t.Fatal(err)
	}

	back := time.Now()
	for _, id := range runs {
		waitTerminal(t, n, id, 2*time.Minute)
	}
	t.Logf("every run completed %v after the server came back; run actors fenced: %d", time.Since(back).Round(time.Millisecond), n.Actors().Fenced())
	checkNothingLostOrDoubled(t, n, runs)
	if status, _, body := create(); status != 201 {
		t.Errorf("create after the outage = %d %v, want 201", status, body)
	}
}

// A KurrentDB server that stops answering with its connections open (a
// hung process, a lost network) is known down within twice the store's
// DownAfter: a create waiting on it then answers 503 with Retry-After and
// the idempotency key to retry with, not 504 at its deadline, and the
// next create is refused at once.
func TestKurrentDBHungCreateFailsFast(t *testing.T) {
	srv, conn := kurrenttest.Start(t)
	_, create := startOutageNode(t, node.Config{EventStore: conn}, 10)
	t.Cleanup(func() { srv.Delay(0, 0) }) // before the node closes
	if status, _, body := create(); status != 201 {
		t.Fatalf("create = %d %v, want 201", status, body)
	}

	srv.Delay(time.Hour, time.Hour)
	for i, what := range []string{"a create sent before the store knew", "the next create"} {
		status, retry, body := create()
		if status != 503 {
			t.Fatalf("%s = %d %v, want 503 (the store is down), not a timeout", what, status, body)
		}
		if secs, err := strconv.Atoi(retry); err != nil || secs <= 0 {
			t.Errorf("%s: 503 with Retry-After %q, want seconds", what, retry)
		}
		if e, _ := body["error"].(map[string]any); i == 0 && e["idempotency_key"] == nil {
			t.Errorf("%s: 503 %v, want the idempotency key to retry with", what, body)
		}
	}
}
