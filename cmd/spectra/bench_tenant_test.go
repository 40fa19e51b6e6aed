package main

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/spectra-fab/spectra/api"
)

// BenchmarkTenantIsolation: one viewer of org-1 keeps 100 sockets
// replaying org-1's stream from position 0 (each reconnects once caught
// up), while an engineer of org-2 creates runs; org-2's create latency and
// run pace are measured without and with the viewer, in the same run.
//
//	go test -bench TenantIsolation -run '^$' -benchtime 1x ./cmd/spectra
func BenchmarkTenantIsolation(b *testing.B) {
	for range b.N {
		s := startServer(b, b.TempDir(), "--time-scale", "0", "--queue-limit", "1000")
		recipe := readExample(b, "ion-seed.json")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		org1 := &client{base: "http://" + s.addr, token: token(b, "engineer", "org-1"), http: &http.Client{Timeout: 30 * time.Second}}
		org2 := &client{base: "http://" + s.addr, token: token(b, "engineer", "org-2"), http: &http.Client{Timeout: 30 * time.Second}}
		// org-1's history: what each viewer socket replays.
		if _, err := bench(ctx, org1, benchConfig{runs: 60, clients: 10, kind: "ion", recipe: recipe}); err != nil {
			b.Fatal(err)
		}
		measure := func() *benchResult {
			res, err := bench(ctx, org2, benchConfig{runs: tenantRuns, clients: 8, kind: "ion", recipe: recipe})
			if err != nil {
				b.Fatal(err)
			}
			return res
		}
		base := measure()

		viewer := token(b, "viewer", "org-1")
		var replays, refused atomic.Int64
		vctx, stopViewers := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for vctx.Err() == nil {
					if replayOnce(vctx, s.addr, viewer) {
						replays.Add(1)
					} else {
						refused.Add(1)
						select {
						case <-vctx.Done():
						case <-time.After(time.Second): // a client that backs off when refused
						}
					}
				}
			}()
		}
		time.Sleep(500 * time.Millisecond) // the sockets are replaying
		loaded := measure()
		stopViewers()
		wg.Wait()
		// The same again without the viewer: what the grown log alone
		// costs, apart from the viewer.
		after := measure()
		cancel()

		p := func(r *benchResult, q float64) float64 {
			return float64(pct(r.createLat, q).Microseconds()) / 1000
		}
		// Run pace as recorded in the log (the run ends' own timestamps):
		// the bench's stream socket, when dropped as a slow consumer,
		// sees ends late, which says nothing of the runs' pace.
		paceOf := func(r *benchResult) float64 { return float64(len(r.endLat)) / r.recorded.Seconds() }
		for _, ph := range []struct {
			name string
			r    *benchResult
		}{{"base", base}, {"loaded", loaded}, {"after", after}} {
			b.ReportMetric(p(ph.r, 0.99), ph.name+"-create-p99-ms")
			b.ReportMetric(paceOf(ph.r), ph.name+"-runs/s")
		}
		b.ReportMetric(paceOf(loaded)/paceOf(base), "loaded/base-runs/s")
		b.ReportMetric(p(loaded, 0.99)/p(base, 0.99), "loaded/base-create-p99")
		b.ReportMetric(float64(replays.Load()), "viewer-replays")
		b.ReportMetric(float64(refused.Load()), "viewer-refused")
		s.stop()
	}
}

// tenantRuns is how many runs org-2 creates in each phase: enough that the
// loaded phase lasts several seconds, past the viewer's first connection burst.
const tenantRuns = 200

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// replayOnce reads the organisation stream from 0 up to caught_up; false
// when the server refused the socket or broke it.
func replayOnce(ctx context.Context, addr, tok string) bool {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, "ws://"+addr+"/api/stream?from=0", http.Header{"Authorization": {"Bearer " + tok}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return false
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	for {
		var m struct {
			Type string `json:"type"`
		}
		if err := conn.ReadJSON(&m); err != nil {
			return false
		}
		if m.Type == api.MessageCaughtUp {
			return true
		}
	}
}
