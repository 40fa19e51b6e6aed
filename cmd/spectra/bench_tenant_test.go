package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/spectra-fab/spectra/api"
)

// BenchmarkTenantIsolation: one viewer of org-1 keeps 100 sockets
// replaying org-1's stream from position 0 (each reconnects once caught
// up; a refused one retries after a second), while an engineer of org-2
// creates runs. Phases alternate in one server: base, then for each round
// loaded (with the viewer, measured from its first dial) and base again.
// A round's loaded/base compares its loaded phase with the base before it;
// its after/base (the base after it over the base before) is the noise the
// same work shows without the viewer. Both are reported per round and as
// median and range. The p99s are also pooled over every phase of a kind
// (loaded/base pooled), and the noise of that pooled ratio is the same
// ratio between the odd and the even base phases (base/base pooled): on a
// shared machine a phase's p99 is mostly its one worst stall, which
// pooling samples more often.
//
//	go test -bench TenantIsolation -run '^$' -benchtime 1x ./cmd/spectra
//
// SPECTRA_TENANT_ROUNDS (default 8) and SPECTRA_TENANT_RUNS (runs per
// phase, default 200) size it; SPECTRA_TENANT_PROFILE=dir writes the
// server's CPU profile of each phase's first seconds and its block and
// mutex profiles (cumulative, before and after each phase: compare with
// go tool pprof -base) into dir.
func BenchmarkTenantIsolation(b *testing.B) {
	rounds := envInt(b, "SPECTRA_TENANT_ROUNDS", 8)
	runs := envInt(b, "SPECTRA_TENANT_RUNS", 200)
	profDir := os.Getenv("SPECTRA_TENANT_PROFILE")
	var pprofAddr string
	if profDir != "" {
		pprofAddr = freePort(b)
		b.Setenv("SPECTRA_PPROF_ADDR", pprofAddr)
		b.Setenv("SPECTRA_PPROF_BLOCK", "10000")
	}
	for range b.N {
		s := startServer(b, b.TempDir(), "--time-scale", "0", "--queue-limit", "1000")
		recipe := readExample(b, "ion-seed.json")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		org1 := &client{base: "http://" + s.addr, token: token(b, "engineer", "org-1"), http: &http.Client{Timeout: 30 * time.Second}}
		org2 := &client{base: "http://" + s.addr, token: token(b, "engineer", "org-2"), http: &http.Client{Timeout: 30 * time.Second}}
		// org-1's history: what each viewer socket replays.
		if _, err := bench(ctx, org1, benchConfig{runs: 60, clients: 10, kind: "ion", recipe: recipe}); err != nil {
			b.Fatal(err)
		}
		viewer := token(b, "viewer", "org-1")
		var replays, refused atomic.Int64
		client := map[*benchResult]float64{} // this process's CPU seconds in each phase: the clients, the viewer's included
		phase := func(name string, loaded bool) *benchResult {
			cpu0 := selfCPU()
			var stopProf func()
			if profDir != "" {
				stopProf = profilePhase(b, pprofAddr, filepath.Join(profDir, name))
			}
			var stopViewer func() (replays, refused int64)
			if loaded {
				stopViewer = startViewer(b, s.addr, viewer)
			}
			res, err := bench(ctx, org2, benchConfig{runs: runs, clients: 8, kind: "ion", recipe: recipe})
			if stopViewer != nil {
				rp, rf := stopViewer()
				replays.Add(rp)
				refused.Add(rf)
			}
			if stopProf != nil {
				stopProf()
			}
			if err != nil {
				b.Fatal(err)
			}
			client[res] = selfCPU() - cpu0
			return res
		}
		bases := []*benchResult{phase("base0", false)}
		var loads []*benchResult
		for i := 1; i <= rounds; i++ {
			loads = append(loads, phase(fmt.Sprintf("loaded%d", i), true))
			bases = append(bases, phase(fmt.Sprintf("base%d", i), false))
		}
		cancel()
		s.stop()
		reportTenant(b, bases, loads, client)
		b.ReportMetric(float64(replays.Load()), "viewer-replays")
		b.ReportMetric(float64(refused.Load()), "viewer-refused")
	}
}

// envTenantViewer, set to a server's address, makes this test binary the
// viewer of BenchmarkTenantIsolation (TestTenantViewer), with the token in
// envTenantViewerToken.
const (
	envTenantViewer      = "SPECTRA_TENANT_VIEWER"
	envTenantViewerToken = "SPECTRA_TENANT_VIEWER_TOKEN"
)

// startViewer starts the viewer in a process of its own, so its 100
// sockets' goroutines do not queue behind the same two Go processors as
// the clients whose latency is measured (what is measured is the server's
// isolation). The function returned stops it and returns its counts.
func startViewer(b *testing.B, addr, tok string) func() (replays, refused int64) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTenantViewer$", "-test.count=1")
	cmd.Env = append(os.Environ(), envTenantViewer+"="+addr, envTenantViewerToken+"="+tok)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the viewer: %v", err)
	}
	return func() (replays, refused int64) {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("viewer: %v\n%s", err, out.String())
		}
		if _, err := fmt.Sscanf(out.String(), "viewer: %d replays, %d refused", &replays, &refused); err != nil {
			b.Fatalf("viewer's output %q: %v", out.String(), err)
		}
		return replays, refused
	}
}

// TestTenantViewer is BenchmarkTenantIsolation's viewer, run only as its
// process (envTenantViewer set): 100 sockets of one viewer that replay the
// organisation stream from 0 to caught_up and reconnect, a refused one
// after a second, until SIGTERM. It prints what they did.
func TestTenantViewer(t *testing.T) {
	addr := os.Getenv(envTenantViewer)
	if addr == "" {
		t.Skip("BenchmarkTenantIsolation's viewer process")
	}
	tok := os.Getenv(envTenantViewerToken)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var replays, refused atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if replayOnce(ctx, addr, tok) {
					replays.Add(1)
					continue
				}
				refused.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second): // a client that backs off when refused
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("viewer: %d replays, %d refused\n", replays.Load(), refused.Load())
}

// reportTenant logs every phase and reports, over the rounds, the median
// and range of loaded/base and after/base for create p99 and run pace, and
// the pooled create p99 of each kind of phase.
func reportTenant(b *testing.B, bases, loads []*benchResult, client map[*benchResult]float64) {
	p99 := func(r *benchResult) float64 { return float64(pct(r.createLat, 0.99).Microseconds()) / 1000 }
	// Run pace as recorded in the log (the run ends' own timestamps):
	// the bench's stream socket, when dropped as a slow consumer, sees
	// ends late, which says nothing of the runs' pace.
	pace := func(r *benchResult) float64 { return float64(len(r.endLat)) / r.recorded.Seconds() }
	// The table is printed, not logged: a benchmark's log is cut after a
	// few lines.
	line := func(name string, r *benchResult) {
		// When the slowest creates were sent: a stall at the start of
		// loaded phases would be the viewer's connection burst.
		idx := make([]int, len(r.createLat))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(r.createLat[b], r.createLat[a]) })
		var worst []string
		for _, i := range idx[:min(3, len(idx))] {
			worst = append(worst, fmt.Sprintf("%.1f", r.createAt[i].Seconds()))
		}
		fmt.Printf("%-8s create p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms (sent at +%s s)  %5.1f runs/s  CPU ms/run: server %4.1f, bench %4.1f  (%d creates)\n", name,
			float64(pct(r.createLat, 0.5).Microseconds())/1000, p99(r), float64(slices.Max(r.createLat).Microseconds())/1000,
			strings.Join(worst, ","), pace(r), 1000*r.cpu/float64(len(r.endLat)), 1000*client[r]/float64(len(r.endLat)), len(r.createLat))
	}
	line("base0", bases[0])
	var loadP99, noiseP99, loadPace, noisePace []float64
	for i, l := range loads {
		before, after := bases[i], bases[i+1]
		line(fmt.Sprintf("loaded%d", i+1), l)
		line(fmt.Sprintf("base%d", i+1), after)
		loadP99 = append(loadP99, p99(l)/p99(before))
		noiseP99 = append(noiseP99, p99(after)/p99(before))
		loadPace = append(loadPace, pace(l)/pace(before))
		noisePace = append(noisePace, pace(after)/pace(before))
	}
	spread := func(xs []float64) string {
		ss := make([]string, len(xs))
		for i, x := range xs {
			ss[i] = strconv.FormatFloat(x, 'f', 2, 64)
		}
		return fmt.Sprintf("median %.2f, range %.2f–%.2f (%s)", median(xs), slices.Min(xs), slices.Max(xs), strings.Join(ss, " "))
	}
	fmt.Printf("create p99 loaded/base: %s\n", spread(loadP99))
	fmt.Printf("create p99 after/base:  %s\n", spread(noiseP99))
	fmt.Printf("runs/s loaded/base:     %s\n", spread(loadPace))
	fmt.Printf("runs/s after/base:      %s\n", spread(noisePace))
	pooled := func(rs []*benchResult) float64 {
		var all []time.Duration
		for _, r := range rs {
			all = append(all, r.createLat...)
		}
		return float64(pct(all, 0.99).Microseconds()) / 1000
	}
	var odd, even []*benchResult
	for i, r := range bases {
		if i%2 == 1 {
			odd = append(odd, r)
		} else {
			even = append(even, r)
		}
	}
	fmt.Printf("create p99 pooled: base %.1f ms, loaded %.1f ms: loaded/base %.2f; base odd/even phases %.1f/%.1f ms: %.2f\n",
		pooled(bases), pooled(loads), pooled(loads)/pooled(bases), pooled(odd), pooled(even), pooled(odd)/pooled(even))
	b.ReportMetric(pooled(bases), "base-create-p99-ms")
	b.ReportMetric(pooled(loads), "loaded-create-p99-ms")
	b.ReportMetric(pooled(loads)/pooled(bases), "pooled-loaded/base-create-p99")
	b.ReportMetric(pooled(odd)/pooled(even), "pooled-base/base-create-p99")
	b.ReportMetric(median(loadP99), "loaded/base-create-p99")
	b.ReportMetric(median(noiseP99), "after/base-create-p99")
	b.ReportMetric(median(loadPace), "loaded/base-runs/s")
	b.ReportMetric(median(noisePace), "after/base-runs/s")
}

// selfCPU is the CPU seconds this process has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// envInt reads a positive integer from the environment, def when unset.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// profilePhase saves the server's block and mutex profiles now and, when
// the returned function is called, again; meanwhile a CPU profile of the
// phase's first 5 s. Files: prefix-{block,mutex}-{0,1}.pb.gz, prefix-cpu.pb.gz.
func profilePhase(b *testing.B, addr, prefix string) func() {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		b.Fatal(err)
	}
	save := func(path, file string) {
		resp, err := http.Get("http://" + addr + "/debug/pprof/" + path)
		if err != nil {
			b.Logf("profile %s: %v", path, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(prefix + "-" + file + ".pb.gz")
		if err != nil {
			b.Logf("profile %s: %v", path, err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}
	save("block", "block-0")
	save("mutex", "mutex-0")
	done := make(chan struct{})
	go func() {
		defer close(done)
		save("profile?seconds=5", "cpu")
	}()
	return func() {
		save("block", "block-1")
		save("mutex", "mutex-1")
		<-done
	}
}

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
