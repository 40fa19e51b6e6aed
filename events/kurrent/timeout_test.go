package kurrent_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events/kurrent"
)

// A server that accepts connections and never answers does not hang a
// caller without a deadline: the store's own call timeout ends the call.
func TestHungServerFailsCallsInTime(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() { // accept and hold, answering nothing
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		// The client keeps trying to discover the node for a while after
		// Close; wait until it gives up, so no goroutine outlives the test.
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			buf := make([]byte, 1<<20)
			if !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "esdb.") {
				break
			}
		}
	})
	start := time.Now()
	_, err = kurrent.Open(context.Background(), "esdb://"+l.Addr().String()+"?tls=false",
		kurrent.Options{CallTimeout: 500 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open on a hung server = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Open on a hung server took %v, want about its 500 ms call timeout", took)
	}
}
