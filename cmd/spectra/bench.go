package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/node"
)

// runBench loads a server with runs and measures them from outside: it
// follows the organisation's WebSocket stream, has C clients create N runs
// over HTTP, and waits for each run's terminal message on the stream (no
// polling). It prints runs/s, latency percentiles, events/s and the
// event store's fsyncs/s (from the server's /metrics).
func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c client
	f := node.NewFlags(fs)
	c.register(f)
	runs := fs.Int("runs", 300, "runs to create")
	clients := fs.Int("clients", 50, "clients creating runs at once")
	kind := fs.String("kind", "ion", "ion or rtp")
	recipeFile := fs.String("recipe", "examples/ion-seed.json", "recipe of every run")
	org := fs.String("org", "org-1", "organisation of the token issued when --token is empty (needs SPECTRA_JWT_SECRET)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	all := fs.Bool("all-messages", false, "follow every message of the organisation stream (the fan-out's load too), not only the runs' ends")
	if err := parseFlags(f, args); err != nil {
		return commandError("bench", err)
	}
	if *kind != "ion" && *kind != "rtp" {
		return fmt.Errorf("bench: kind must be ion or rtp, not %q", *kind)
	}
	if *runs <= 0 || *clients <= 0 {
		return errors.New("bench: --runs and --clients must be positive")
	}
	recipe, err := os.ReadFile(*recipeFile)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if c.token == "" {
		secret := os.Getenv("SPECTRA_JWT_SECRET")
		if secret == "" {
			return errors.New("bench: set --token (SPECTRA_TOKEN), or SPECTRA_JWT_SECRET to issue one")
		}
		if c.token, err = api.IssueToken([]byte(secret), "bench-user", "bench@example.com", *org, "engineer", 24*time.Hour); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := bench(ctx, &c, benchConfig{runs: *runs, clients: *clients, kind: *kind, recipe: recipe, all: *all})
	if res != nil {
		res.print(os.Stdout)
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

type benchConfig struct {
	runs, clients int
	kind          string
	recipe        []byte
	// all: follow every message of the stream; else only the terminal
	// ones (?types=), so that the bench's one socket is not what bounds
	// the runs/s it sees.
	all bool
}

// benchResult is what a bench measured.
type benchResult struct {
	cfg        benchConfig
	wall       time.Duration // first create sent → last run's end seen on the stream
	recorded   time.Duration // first create sent → last run's end recorded (its event's timestamp)
	created    int
	ended      map[string]int // terminal message type → runs
	failed     []error        // creates refused
	createLat  []time.Duration
	createAt   []time.Duration // when each create of createLat was sent, after the first
	endLat     []time.Duration // create sent → terminal message received
	events     int             // event messages of the bench's runs on the stream
	fsyncs     float64         // the store's fsyncs during the bench (-1: unknown)
	appended   float64         // events appended to the store during the bench (-1: unknown)
	cpu        float64         // the server's CPU seconds during the bench (-1: unknown)
	reconnects int
}

func (r *benchResult) print(w io.Writer) {
	secs := r.wall.Seconds()
	done := 0
	for _, n := range r.ended {
		done += n
	}
	fmt.Fprintf(w, "runs: %d created, %d ended %v, %d create errors, in %.2f s\n", r.created, done, r.ended, len(r.failed), secs)
	for i, err := range r.failed {
		if i == 3 {
			fmt.Fprintf(w, "  … %d more\n", len(r.failed)-3)
			break
		}
		fmt.Fprintf(w, "  create error: %v\n", err)
	}
	if secs <= 0 {
		return
	}
	fmt.Fprintf(w, "runs/s:   %.1f (%d clients; ends as seen on the stream)\n", float64(done)/secs, r.cfg.clients)
	if rec := r.recorded.Seconds(); rec > 0 {
		// A socket the server dropped as a slow consumer resumes with a
		// paced replay, so ends may be seen late; their events' own
		// timestamps say when they were durably recorded.
		fmt.Fprintf(w, "runs/s:   %.1f (ends as recorded in the log, in %.2f s)\n", float64(done)/rec, rec)
	}
	fmt.Fprintf(w, "run latency (create → end on the stream): %s\n", percentiles(r.endLat))
	fmt.Fprintf(w, "create latency (POST):                    %s\n", percentiles(r.createLat))
	switch {
	case r.cfg.all:
		fmt.Fprintf(w, "events/s: %.0f on the stream (%d events)", float64(r.events)/secs, r.events)
		if r.appended >= 0 {
			fmt.Fprintf(w, ", %.0f appended to the store", r.appended/secs)
		}
		fmt.Fprintln(w)
	case r.appended >= 0:
		fmt.Fprintf(w, "events/s: %.0f appended to the store (%.0f in all; the stream was followed for the runs' ends only)\n", r.appended/secs, r.appended)
	}
	if r.fsyncs >= 0 {
		fmt.Fprintf(w, "fsyncs/s: %.0f (%.0f in all, every JetStream write of the node: events, checkpoints, artifacts)\n", r.fsyncs/secs, r.fsyncs)
	} else {
		fmt.Fprintln(w, "fsyncs/s: unknown (the server's /metrics has no spectra_store_fsyncs_total)")
	}
	if r.cpu >= 0 && done > 0 {
		fmt.Fprintf(w, "server CPU: %.1f s (%.0f %% of one core, %.1f ms per run)\n", r.cpu, 100*r.cpu/secs, 1000*r.cpu/float64(done))
	}
	if r.reconnects > 0 {
		fmt.Fprintf(w, "stream reconnections: %d\n", r.reconnects)
	}
}

// percentiles formats p50, p90, p99 and max of ds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	r := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s", r(at(0.5)), r(at(0.9)), r(at(0.99)), r(s[len(s)-1]))
}

// benchTracker matches the stream's terminal messages with created runs;
// a run may end before its create's answer arrives.
type benchTracker struct {
	mu      sync.Mutex
	sent    map[string]time.Time // run id → create sent
	endedAt map[string]time.Time
	endRec  map[string]time.Time // the terminal event's timestamp
	endType map[string]string
	events  map[string]int
	want    int // runs created; -1 until every create answered
	all     chan struct{}
	closed  bool
}

func (t *benchTracker) created(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent[id] = at
	t.checkLocked()
}

func (t *benchTracker) message(m streamMessage, at time.Time) {
	if m.RunID == "" || m.Revision == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events[m.RunID]++
	if m.Terminal() {
		if _, seen := t.endedAt[m.RunID]; !seen {
			t.endedAt[m.RunID], t.endType[m.RunID], t.endRec[m.RunID] = at, m.Type, m.Timestamp
			t.checkLocked()
		}
	}
}

func (t *benchTracker) createsDone(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.want = n
	t.checkLocked()
}

func (t *benchTracker) checkLocked() {
	if t.closed || t.want < 0 {
		return
	}
	for id := range t.sent {
		if _, ok := t.endedAt[id]; !ok {
			return
		}
	}
	t.closed = true
	close(t.all)
}

func bench(ctx context.Context, c *client, cfg benchConfig) (*benchResult, error) {
	t := &benchTracker{sent: map[string]time.Time{}, endedAt: map[string]time.Time{}, endRec: map[string]time.Time{}, endType: map[string]string{},
		events: map[string]int{}, want: -1, all: make(chan struct{})}
	res := &benchResult{cfg: cfg, ended: map[string]int{}, fsyncs: -1, appended: -1, cpu: -1}
	m0, mErr := scrapeMetrics(ctx, c)

	// Follow the organisation stream first: every terminal message after
	// the first create is then seen.
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	caughtUp := make(chan struct{})
	streamErr := make(chan error, 1)
	var reconnects atomic.Int32
	go func() { streamErr <- followOrg(streamCtx, c, cfg, t, caughtUp, &reconnects) }()
	select {
	case <-caughtUp:
	case err := <-streamErr:
		return nil, fmt.Errorf("organisation stream: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	start := time.Now()
	var (
		next    atomic.Int64
		mu      sync.Mutex
		wg      sync.WaitGroup
		created int
	)
	for range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(cfg.runs) && ctx.Err() == nil {
				var out struct {
					RunID string `json:"run_id"`
				}
				sent := time.Now()
				err := c.do(ctx, http.MethodPost, "/api/"+cfg.kind+"/runs", cfg.recipe, &out)
				took := time.Since(sent)
				mu.Lock()
				if err != nil {
					res.failed = append(res.failed, err)
				} else {
					created++
					res.createLat = append(res.createLat, took)
					res.createAt = append(res.createAt, sent.Sub(start))
				}
				mu.Unlock()
				if err == nil {
					t.created(out.RunID, sent)
				}
			}
		}()
	}
	wg.Wait()
	t.createsDone(created)
	res.created = created

	var err error
	select {
	case <-t.all:
	case err = <-streamErr:
		err = fmt.Errorf("organisation stream: %w", err)
	case <-ctx.Done():
		err = fmt.Errorf("waiting for the runs to end: %w", ctx.Err())
	}
	stopStream()

	t.mu.Lock()
	last, lastRec := start, start
	for id, sent := range t.sent {
		end, ok := t.endedAt[id]
		if !ok {
			continue
		}
		if rec := t.endRec[id]; rec.After(lastRec) {
			lastRec = rec
		}
		res.ended[t.endType[id]]++
		res.endLat = append(res.endLat, end.Sub(sent))
		res.events += t.events[id]
		if end.After(last) {
			last = end
		}
	}
	t.mu.Unlock()
	res.wall = last.Sub(start)
	res.recorded = lastRec.Sub(start)
	res.reconnects = int(reconnects.Load())
	if m1, err1 := scrapeMetrics(context.WithoutCancel(ctx), c); mErr == nil && err1 == nil {
		if v1, ok := m1["spectra_store_fsyncs_total"]; ok {
			res.fsyncs = v1 - m0["spectra_store_fsyncs_total"]
		}
		if v1, ok := m1["spectra_store_events_appended_total"]; ok {
			res.appended = v1 - m0["spectra_store_events_appended_total"]
		}
		if v1, ok := m1["process_cpu_seconds_total"]; ok {
			res.cpu = v1 - m0["process_cpu_seconds_total"]
		}
	}
	return res, err
}

// followOrg reads the organisation stream from now on, handing every
// message to t, until ctx ends. It closes caughtUp after the first
// caught_up; a broken stream is resumed from the position after the last
// message read.
func followOrg(ctx context.Context, c *client, cfg benchConfig, t *benchTracker, caughtUp chan struct{}, reconnects *atomic.Int32) error {
	var from *uint64
	once := sync.OnceFunc(func() { close(caughtUp) })
	for attempt := 0; ; attempt++ {
		err := followOrgOnce(ctx, c, cfg, &from, func(m streamMessage) {
			if m.Type == api.MessageCaughtUp {
				once()
				return
			}
			t.message(m, time.Now())
		})
		if ctx.Err() != nil {
			return nil
		}
		if attempt >= 8 {
			return err
		}
		reconnects.Add(1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func followOrgOnce(ctx context.Context, c *client, cfg benchConfig, from **uint64, handle func(streamMessage)) error {
	u, err := url.Parse(strings.TrimRight(c.base, "/"))
	if err != nil {
		return fmt.Errorf("server url: %w", err)
	}
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	u.Path += "/api/stream"
	q := url.Values{"kind": {cfg.kind}}
	if !cfg.all {
		q.Set("types", strings.Join([]string{api.MessageCompleted, api.MessageError, api.MessageCancelled}, ","))
	}
	if *from != nil {
		q.Set("from", strconv.FormatUint(**from, 10))
	}
	u.RawQuery = q.Encode()
	hdr := http.Header{"Authorization": {"Bearer " + c.token}}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 64 << 10}
	conn, resp, err := d.DialContext(ctx, u.String(), hdr)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
			return fmt.Errorf("connect to %s: %s", u.Redacted(), resp.Status)
		}
		return fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			return err
		}
		var m streamMessage
		if err := json.NewDecoder(bufio.NewReader(r)).Decode(&m); err != nil {
			return fmt.Errorf("decode stream message: %w", err)
		}
		if m.Position != nil && m.Type != api.MessageCaughtUp {
			next := *m.Position + 1
			*from = &next
		}
		handle(m)
	}
}

// Terminal reports whether m ends its run's stream.
func (m streamMessage) Terminal() bool {
	return m.Type == api.MessageCompleted || m.Type == api.MessageError || m.Type == api.MessageCancelled
}

// scrapeMetrics reads the server's counters and gauges without labels.
func scrapeMetrics(ctx context.Context, c *client) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.base, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}
