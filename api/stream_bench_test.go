package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
)

// The stream benchmarks:
//
//	go test -run '^$' -bench 'Stream' -benchtime 1x ./api/
//
// BenchmarkStreamFanout opens 1,000 and 10,000 sockets on the
// organisation stream of one node (embedded JetStream store; 20 sockets
// per viewer, the default cap), appends telemetry events one at a time
// and reports the latency from the start of the append to the delivery to
// each socket, p50 and p99 over every delivery, and the server process's
// CPU time per delivery (steadier than latency on a shared machine). The
// floor/ variants serve the same clients from a bare WebSocket server
// (floorServer): what this machine allows. The sockets' client ends
// live in a child process (this test binary, run as
// TestStreamBenchClients), as one process may hold at most 20,000 files
// here and 10,000 sockets need 20,000 ends. BenchmarkStreamReplay reports
// the time to replay a 3,000-event run to one socket, up to caught_up.
// SPECTRA_FANOUT_PROFILE=<path> writes the server's CPU profile of the
// deliveries of each variant to <path>.<sockets>.<floor>.

// fanoutPerUser is how many of the benchmark's sockets one viewer holds:
// the default cap of StreamConfig.MaxSocketsPerPrincipal.
const fanoutPerUser = 20

// fanoutScenario is one fan-out measurement.
type fanoutScenario struct {
	subscribers int
	events      int
	every       time.Duration // between appends
}

func BenchmarkStreamFanout(b *testing.B) {
	for _, sc := range []fanoutScenario{
		{subscribers: 1000, events: 50, every: 50 * time.Millisecond},
		{subscribers: 10000, events: 30, every: 200 * time.Millisecond},
	} {
		for _, floor := range []bool{false, true} {
			name := fmt.Sprintf("subscribers=%d", sc.subscribers)
			if floor {
				name = "floor/" + name
			}
			b.Run(name, func(b *testing.B) {
				raiseFileLimit(b, sc.subscribers+1000) // this process holds the server ends
				for range b.N {
					p50, p99, worst, n, cpu := runFanout(b, sc, floor)
					b.ReportMetric(float64(cpu.Nanoseconds())/1000/float64(max(n, 1)), "server-cpu-µs/delivery")
					b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
					b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
					b.ReportMetric(float64(n), "deliveries")
				}
			})
		}
	}
}

// floorServer is the fan-out's floor on this machine: a bare WebSocket
// server that writes each message, framed once, to every socket from one
// loop per core, with no store, hub, session or check. The same clients
// measure it.
type floorServer struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func newFloorServer(b *testing.B) *floorServer {
	fs := &floorServer{}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/floor", fws.New(func(c *fws.Conn) {
		nc := c.NetConn()
		if _, err := nc.Write(textFrame([]byte(`{"type":"caught_up"}`))); err != nil {
			return
		}
		fs.mu.Lock()
		fs.conns = append(fs.conns, nc)
		fs.mu.Unlock()
		for { // until the client closes
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	fs.addr = ln.Addr().String()
	go func() { _ = app.Listener(ln) }()
	b.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return fs
}

// send writes data as one frame to every socket.
func (fs *floorServer) send(data []byte) {
	frame := textFrame(data)
	fs.mu.Lock()
	conns := fs.conns
	fs.mu.Unlock()
	var wg sync.WaitGroup
	for w := range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(conns); i += runtime.GOMAXPROCS(0) {
				_, _ = conns[i].Write(frame)
			}
		}()
	}
	wg.Wait()
}

func runFanout(b *testing.B, sc fanoutScenario, floor bool) (p50, p99, worst time.Duration, n int, cpu time.Duration) {
	runID := "ION-20260101-0000BE0C"
	var (
		urls    []string
		publish func(events.Payload)
	)
	if floor {
		fs := newFloorServer(b)
		urls = []string{"ws://" + fs.addr + "/floor"}
		publish = func(p events.Payload) {
			ev, err := events.New(p, events.Metadata{OrgID: "org-1"})
			if err != nil {
				b.Fatal(err)
			}
			data, err := encodeMessage(newStreamMessage(events.Record{ID: ev.ID, Stream: events.RunStream(runID),
				Type: ev.Type, Time: time.Now(), Data: ev.Data, Metadata: ev.Metadata}))
			if err != nil {
				b.Fatal(err)
			}
			fs.send(data)
		}
	} else {
		// The tenant caps stay as configured by default: the sockets
		// belong to subscribers/perUser viewers of one organisation.
		st := newStreamStack(b, streamStackOptions{jetstream: true})
		st.fabricate(b, runID, "org-1")
		for u := range (sc.subscribers + fanoutPerUser - 1) / fanoutPerUser {
			tok, err := IssueToken(testSecret, fmt.Sprintf("u-bench-%d", u), "", "org-1", string(RoleViewer), time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			urls = append(urls, "ws://"+st.addr+"/api/stream?token="+tok)
		}
		publish = func(p events.Payload) { st.appendRaw(b, runID, "org-1", p) }
	}
	perURL := fanoutPerUser
	if len(urls) == 1 {
		perURL = sc.subscribers
	}
	urlFile := filepath.Join(b.TempDir(), "urls")
	if err := os.WriteFile(urlFile, []byte(strings.Join(urls, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestStreamBenchClients$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SPECTRA_BENCH_URLS="+urlFile, "SPECTRA_BENCH_PER_URL="+strconv.Itoa(perURL),
		"SPECTRA_BENCH_CLIENTS="+strconv.Itoa(sc.subscribers))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	lines := bufio.NewScanner(out)
	expect := func(prefix string) string {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, prefix) {
				return strings.TrimPrefix(l, prefix)
			}
		}
		b.Fatalf("bench clients ended before %q: %v", prefix, lines.Err())
		return ""
	}
	setup := expect("READY ")
	b.Logf("%d sockets connected and caught up in %s", sc.subscribers, setup)

	b.ResetTimer()
	if path := os.Getenv("SPECTRA_FANOUT_PROFILE"); path != "" {
		// The server's CPU profile of the deliveries alone (not of the
		// sockets' setup), one file per variant.
		f, err := os.Create(fmt.Sprintf("%s.%d.%t", path, sc.subscribers, floor))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu = -cpuNow()
	for i := range sc.events {
		ev := &events.TelemetryRecorded{JobID: "job-0000be0c0000", FirstStep: i * 10, Progress: 50,
			Samples: map[string][]float64{"time_s": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
				"beam_current_ma": {5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, "chamber_pressure_torr": {2e-6, 2e-6, 2e-6, 2e-6, 2e-6, 2e-6, 2e-6, 2e-6, 2e-6, 2e-6}}}
		ev.CurrentStep = "t=" + strconv.FormatInt(time.Now().UnixNano(), 10) // the append starts now
		publish(ev)
		time.Sleep(sc.every)
	}
	publish(&events.RunCompleted{JobID: "job-0000be0c0000"})
	var p50ns, p99ns, maxns int64
	res := expect("RESULT ")
	b.StopTimer()
	cpu += cpuNow()
	if _, err := fmt.Sscan(res, &p50ns, &p99ns, &maxns, &n); err != nil {
		b.Fatalf("result %q: %v", res, err)
	}
	if want := sc.subscribers * sc.events; n != want {
		b.Errorf("%d deliveries, want %d", n, want)
	}
	return time.Duration(p50ns), time.Duration(p99ns), time.Duration(maxns), n, cpu
}

// cpuNow is the CPU time (user and system) this process has used: the
// server's side of the fan-out (the clients are another process).
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestStreamBenchClients is the client side of BenchmarkStreamFanout, run
// in a child process; it does nothing in a normal test run. It opens the
// sockets, says READY once each has caught up, records when each telemetry
// message arrives against the append time the message carries, and, once
// every socket was closed at the run's end, prints the latencies' p50, p99
// and maximum (ns) and their count.
func TestStreamBenchClients(t *testing.T) {
	urlFile, n := os.Getenv("SPECTRA_BENCH_URLS"), os.Getenv("SPECTRA_BENCH_CLIENTS")
	if urlFile == "" {
		t.Skip("the client side of BenchmarkStreamFanout")
	}
	clients, _ := strconv.Atoi(n)
	perURL, _ := strconv.Atoi(os.Getenv("SPECTRA_BENCH_PER_URL"))
	raw, err := os.ReadFile(urlFile)
	if err != nil {
		t.Fatal(err)
	}
	urls := strings.Split(string(raw), "\n")
	raiseFileLimit(t, clients+1000)
	start := time.Now()
	conns := make([]*websocket.Conn, clients)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		dial = websocket.Dialer{HandshakeTimeout: time.Minute}
	)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < clients; i = int(next.Add(1) - 1) {
				c, _, err := dial.Dial(urls[i/perURL], http.Header{})
				if err != nil {
					t.Errorf("dial %d: %v", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var (
		caughtUp sync.WaitGroup
		readers  sync.WaitGroup
		mu       sync.Mutex
		lat      []int64
		marker   = []byte(`"current_step":"t=`)
		caught   = []byte(`"type":"caught_up"`)
		ends     = map[string]int{} // how sockets ended before completed
		done     = []byte(`"type":"completed"`)
	)
	caughtUp.Add(clients)
	for _, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer c.Close()
			var mine []int64
			up := false
			for {
				_, data, err := c.ReadMessage()
				now := time.Now().UnixNano()
				if err != nil {
					if !up {
						caughtUp.Done()
					}
					why := err.Error()
					if ce, ok := err.(*websocket.CloseError); ok {
						why = fmt.Sprintf("close %d %s", ce.Code, ce.Text)
					}
					mu.Lock()
					ends[why]++
					mu.Unlock()
					break
				}
				if !up && bytes.Contains(data, caught) {
					up = true
					caughtUp.Done()
					continue
				}
				if bytes.Contains(data, done) {
					break // the run ended: the organisation stream goes on, the measurement not
				}
				if i := bytes.Index(data, marker); i >= 0 {
					rest := data[i+len(marker):]
					if j := bytes.IndexByte(rest, '"'); j > 0 {
						if sent, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
							mine = append(mine, now-sent)
						}
					}
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	caughtUp.Wait()
	fmt.Printf("READY %s\n", time.Since(start).Round(time.Millisecond))
	readers.Wait()
	for why, n := range ends {
		fmt.Fprintf(os.Stderr, "bench clients: %d sockets ended before completed: %s\n", n, why)
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		fmt.Println("RESULT 0 0 0 0")
		return
	}
	q := func(p float64) int64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("RESULT %d %d %d %d\n", q(0.50), q(0.99), lat[len(lat)-1], len(lat))
}

// raiseFileLimit raises the open-file limit to what the machine allows and
// skips when that is below need.
func raiseFileLimit(tb testing.TB, need int) {
	tb.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatalf("getrlimit: %v", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatalf("setrlimit: %v", err)
	}
	if lim.Cur < uint64(need) {
		tb.Skipf("open-file limit %d, need %d", lim.Cur, need)
	}
}

func BenchmarkStreamReplay(b *testing.B) {
	for _, js := range []bool{false, true} {
		name := "store=memory"
		if js {
			name = "store=jetstream"
		}
		b.Run(name+"/events=3000", func(b *testing.B) {
			// The replay's own speed: unpaced (ReplayRate is a policy).
			st := newStreamStack(b, streamStackOptions{jetstream: js, stream: StreamConfig{ReplayRate: 1 << 30}})
			runID := "ION-20260101-0000BE0D"
			st.fabricate(b, runID, "org-1")
			samples := func() map[string][]float64 {
				m := map[string][]float64{}
				for _, f := range []string{"time_s", "beam_current_ma", "chamber_pressure_torr", "analyzer_field_v",
					"integrated_dose_atoms_cm2", "dose_uniformity_pct", "wafer_temp_c"} {
					m[f] = []float64{1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7, 8.8, 9.9, 10.1}
				}
				return m
			}()
			for i := 0; i < 2999; i += 100 {
				var ps []events.Payload
				for j := i; j < min(i+100, 2999); j++ {
					ps = append(ps, &events.TelemetryRecorded{JobID: "job-0000be0d0000", FirstStep: j * 10,
						Samples: samples, Progress: 50, CurrentStep: "Implanting (50% dose)"})
				}
				st.appendRaw(b, runID, "org-1", ps...)
			}
			if n := len(st.readRun(b, runID)); n != 3000 {
				b.Fatalf("run has %d events, want 3000", n)
			}
			url := "ws://" + st.addr + "/api/ion/stream/" + runID + "?token=" + tokenOf(b, RoleViewer, "org-1")
			b.ResetTimer()
			for range b.N {
				c, _, err := websocket.DefaultDialer.Dial(url, nil)
				if err != nil {
					b.Fatal(err)
				}
				msgs := 0
				for {
					_, data, err := c.ReadMessage()
					if err != nil {
						b.Fatalf("after %d messages: %v", msgs, err)
					}
					msgs++
					if bytes.Contains(data, []byte(`"type":"caught_up"`)) {
						break
					}
				}
				_ = c.Close()
				if msgs != 3002 {
					b.Fatalf("%d messages, want connected, 3000 events, caught_up", msgs)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/replay")
			b.ReportMetric(3000*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
