package api

import (
	"github.com/spectra-fab/spectra/events/eventstest"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
	"github.com/spectra-fab/spectra/projections"
)

// These tests run the streams against a real stack on loopback: an event
// store (in memory, or embedded JetStream), the job-status projection and
// its runner, the actor layer driving a small deterministic engine, the
// API served over TCP, and WebSocket clients.

// streamEngines is the deterministic test engine: Steps steps of 100 ms,
// an SPC alarm at AlarmAt, and Width extra telemetry fields to make
// messages as large as a test needs.
var streamEngines = processtest.Factory{Result: processtest.Result{"final_dose_atoms_cm2": 1.02e15, "dose_error_pct": 2.0,
	"vm_prediction": map[string]any{"activation_pct": 97.5}}}

type streamArtifacts struct{}

func (streamArtifacts) Put(_ context.Context, key, _ string, _ []byte) (string, error) {
	return "mem://" + key, nil
}

// streamStack is a whole node on loopback.
type streamStack struct {
	store  events.Store
	runner *projections.Runner
	svc    *actors.Service
	srv    *Server
	addr   string
}

type streamStackOptions struct {
	jetstream bool
	timeScale float64
	stream    StreamConfig
	sndbuf    int // SO_SNDBUF of the server's accepted sockets, when > 0: a narrow network path
}

// narrowListener sets a small send buffer on every connection it accepts.
type narrowListener struct {
	net.Listener
	sndbuf int
}

func (l narrowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.sndbuf)
	}
	return c, err
}

func newStreamStack(t testing.TB, o streamStackOptions) *streamStack {
	t.Helper()
	st := &streamStack{}
	if o.jetstream {
		js, err := jetstream.Open(context.Background(), jetstream.Config{DataDir: t.TempDir()})
		if err != nil {
			t.Fatalf("jetstream.Open: %v", err)
		}
		st.store = js
	} else {
		st.store = memory.New()
	}
	t.Cleanup(func() { _ = st.store.Close() })

	jobs := projections.NewJobStatus()
	st.runner = projections.NewRunner(st.store, nil, nil, jobs)
	ctx, cancel := context.WithCancel(context.Background())
	runnerDone := make(chan struct{})
	go func() {
		defer close(runnerDone)
		_ = st.runner.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-runnerDone })

	svc, err := actors.New(actors.Config{TimeScale: o.timeScale, AllowFaultInjection: true},
		st.store, streamArtifacts{}, map[process.Kind]actors.EngineFactory{process.KindIon: streamEngines}, nil)
	if err != nil {
		t.Fatalf("actors.New: %v", err)
	}
	st.svc = svc
	t.Cleanup(func() { _ = svc.Close() })

	st.srv = New(Config{JWTSecret: testSecret, Logger: slog.New(slog.DiscardHandler), Node: "node-test",
		AllowFaultInjection: true, Stream: o.stream, RateLimits: RateLimits{Reads: -1, CreateRuns: -1}},
		Deps{Commands: svc, Queries: projections.JobQueries{Model: jobs, Runner: st.runner}, Store: st.store, Streams: st.store})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.addr = ln.Addr().String()
	if o.sndbuf > 0 {
		ln = narrowListener{Listener: ln, sndbuf: o.sndbuf}
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = st.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-served
	})
	return st
}

// createRun creates a run over HTTP and returns its id.
func (st *streamStack) createRun(t testing.TB, recipe string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+st.addr+"/api/ion/runs", strings.NewReader(recipe))
	req.Header.Set("Authorization", "Bearer "+tokenOf(t, RoleEngineer, "org-1"))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /api/ion/runs: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/ion/runs = %d %s", res.StatusCode, body)
	}
	var created struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return created.RunID
}

// fabricate appends a run's first event straight to the store (no actor
// drives it) and waits until the read model knows the run.
func (st *streamStack) fabricate(t testing.TB, runID, org string) {
	t.Helper()
	ev, err := events.New(&events.RunRequested{RunID: runID, JobID: "job-" + strings.ToLower(runID[len(runID)-8:]) + "0000",
		Kind: process.KindIon, Recipe: json.RawMessage(`{}`), CreatedAt: time.Now().UTC()}, events.Metadata{OrgID: org, UserID: "u-1"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.store.Append(context.Background(), events.RunStream(runID), events.ExpectNoStream, ev)
	if err != nil {
		t.Fatalf("append RunRequested: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.runner.WaitFor(ctx, res.Position); err != nil {
		t.Fatalf("WaitFor(%d): %v", res.Position, err)
	}
}

// appendRaw appends run events straight to the store.
func (st *streamStack) appendRaw(t testing.TB, runID, org string, ps ...events.Payload) events.AppendResult {
	t.Helper()
	var evs []events.Event
	for _, p := range ps {
		ev, err := events.New(p, events.Metadata{OrgID: org, UserID: "u-1"})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	res, err := st.store.Append(context.Background(), events.RunStream(runID), events.ExpectAny, evs...)
	if err != nil {
		t.Errorf("append: %v", err)
	}
	return res
}

func (st *streamStack) readRun(t testing.TB, runID string) []events.Record {
	t.Helper()
	recs, err := st.store.ReadStream(context.Background(), events.RunStream(runID), events.Forwards, 0, 0)
	if err != nil && !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("ReadStream: %v", err)
	}
	return recs
}

// waitEvents waits until the run's stream holds at least n events.
func (st *streamStack) waitEvents(t testing.TB, runID string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(st.readRun(t, runID)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("run %s has fewer than %d events after 20 s", runID, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tokenOf(t testing.TB, role Role, org string) string {
	t.Helper()
	tok, err := IssueToken(testSecret, "u-"+string(role), string(role)+"@example.com", org, string(role), time.Hour)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	return tok
}

// wsMsg is a stream message as a client decodes it.
type wsMsg struct {
	Type      string         `json:"type"`
	Event     string         `json:"event"`
	RunID     string         `json:"run_id"`
	Timestamp time.Time      `json:"timestamp"`
	Revision  *uint64        `json:"revision"`
	Position  *uint64        `json:"position"`
	Data      map[string]any `json:"data"`
	received  time.Time
}

// wsClient is a stream client: dial, then collect.
type wsClient struct {
	conn *websocket.Conn
}

type dialOptions struct {
	header http.Header
	rcvbuf int // SO_RCVBUF of the client's socket, when > 0
}

func dialWS(t testing.TB, st *streamStack, path string, o dialOptions) (*wsClient, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if o.rcvbuf > 0 {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvbuf)
			})
			return errors.Join(err, serr)
		}}
		d.NetDialContext = nd.DialContext
	}
	conn, res, err := d.Dial("ws://"+st.addr+path, o.header)
	if res != nil && res.Body != nil {
		t.Cleanup(func() { _ = res.Body.Close() })
	}
	if err != nil {
		return nil, res, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &wsClient{conn: conn}, res, nil
}

func mustDial(t testing.TB, st *streamStack, path, tok string) *wsClient {
	t.Helper()
	c, res, err := dialWS(t, st, path+sep(path)+"token="+tok, dialOptions{})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	return c
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

// collect reads messages until the server closes the socket (or within
// passes) and returns them with the close error.
func (c *wsClient) collect(t testing.TB, within time.Duration) ([]wsMsg, *websocket.CloseError) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	var msgs []wsMsg
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return msgs, ce
			}
			t.Fatalf("read after %d messages: %v", len(msgs), err)
		}
		var m wsMsg
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		m.received = time.Now()
		msgs = append(msgs, m)
	}
}

// eventRevisions returns the revisions of the event messages, in order.
func eventRevisions(msgs []wsMsg) []uint64 {
	var revs []uint64
	for _, m := range msgs {
		if m.Revision != nil && m.Type != MessageCaughtUp {
			revs = append(revs, *m.Revision)
		}
	}
	return revs
}

// checkConsecutive fails unless revs are from, from+1, …, to.
func checkConsecutive(t testing.TB, what string, revs []uint64, from, to uint64) {
	t.Helper()
	if len(revs) != int(to-from+1) {
		t.Errorf("%s: %d event messages, want revisions %d..%d (%d)", what, len(revs), from, to, to-from+1)
	}
	for i, r := range revs {
		if r != from+uint64(i) {
			t.Fatalf("%s: message %d has revision %d, want %d (gap or duplicate); revisions %v", what, i, r, from+uint64(i), revs)
		}
	}
}

// lastEvent returns the last message made from an event.
func lastEvent(msgs []wsMsg) wsMsg {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Revision != nil && msgs[i].Type != MessageCaughtUp {
			return msgs[i]
		}
	}
	return wsMsg{}
}

func indexOf(msgs []wsMsg, typ string) int {
	for i, m := range msgs {
		if m.Type == typ {
			return i
		}
	}
	return -1
}

// checkMapping checks each event message against the stored record it
// came from: the mapping of StreamMessage's table.
func checkMapping(t testing.TB, msgs []wsMsg, recs []events.Record) {
	t.Helper()
	want := map[string]string{
		events.TypeRunRequested: MessageProgress, events.TypeRunQueued: MessageProgress,
		events.TypeRunStarted: MessageProgress, events.TypeRunPhaseChanged: MessageProgress,
		events.TypeTelemetryRecorded: MessageTelemetry, events.TypeSPCViolation: MessageAlert,
		events.TypeArtifactStored: MessageProgress, events.TypeRunCompleted: MessageCompleted,
		events.TypeRunFailed: MessageError, events.TypeRunCancelled: MessageCancelled,
		events.TypeRunCancelRequested: MessageProgress,
	}
	for _, m := range msgs {
		if m.Revision == nil || m.Type == MessageCaughtUp {
			continue
		}
		rec := recs[*m.Revision]
		base := events.BaseType(rec.Type)
		if m.Event != base || m.Type != want[base] || *m.Position != rec.Position {
			t.Errorf("revision %d: message %s/%s at %d, want %s/%s at %d", *m.Revision, m.Type, m.Event, *m.Position,
				want[base], base, rec.Position)
		}
	}
}

func TestRunStreamMidRun(t *testing.T) {
	for _, tc := range []struct {
		name      string
		jetstream bool
	}{{"memory", false}, {"jetstream", true}} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStreamStack(t, streamStackOptions{jetstream: tc.jetstream, timeScale: 20})
			// 400 steps: 40 s of process time, 2 s of wall time.
			runID := st.createRun(t, `{"steps": 400, "alarm_at": 250}`)
			st.waitEvents(t, runID, 10) // mid-run: some telemetry recorded, most to come
			c := mustDial(t, st, "/api/ion/stream/"+runID, tokenOf(t, RoleViewer, "org-1"))
			msgs, ce := c.collect(t, 30*time.Second)
			if ce.Code != websocket.CloseNormalClosure {
				t.Fatalf("close = %d %q, want 1000", ce.Code, ce.Text)
			}
			recs := st.readRun(t, runID)
			if msgs[0].Type != MessageConnected || msgs[0].Data["run_id"] != runID {
				t.Fatalf("first message = %+v, want connected with run_id", msgs[0])
			}
			cu := indexOf(msgs, MessageCaughtUp)
			if cu < 0 {
				t.Fatal("no caught_up message")
			}
			if cu < 2+9 {
				t.Errorf("caught_up after %d replayed events, want at least 10", cu-1)
			}
			last := msgs[len(msgs)-1]
			if last.Type != MessageCompleted || last.Data["final_dose_atoms_cm2"] != 1.02e15 {
				t.Errorf("last message = %s %v, want completed with the result", last.Type, last.Data)
			}
			if arts, _ := last.Data["artifacts"].([]any); len(arts) != 1 {
				t.Errorf("completed artifacts = %v, want telemetry.json", last.Data["artifacts"])
			}
			live := map[string]int{}
			for _, m := range msgs[cu+1:] {
				live[m.Type]++
			}
			if live[MessageTelemetry] == 0 || live[MessageProgress] == 0 || live[MessageAlert] != 1 {
				t.Errorf("live messages by type = %v, want telemetry, progress and the alert", live)
			}
			checkConsecutive(t, "stream", eventRevisions(msgs), 0, uint64(len(recs)-1))
			checkMapping(t, msgs, recs)
			if got := msgs[cu].Revision; got == nil || *got != uint64(cu-2) {
				t.Errorf("caught_up revision = %v, want %d (the last replayed)", got, cu-2)
			}
			for _, m := range msgs[cu+1:] {
				if m.Type == MessageTelemetry {
					if _, ok := m.Data["beam_current_ma"].([]any); !ok || m.Data["progress"] == nil {
						t.Errorf("telemetry data = %v, want columns and progress", m.Data)
					}
					break
				}
			}
		})
	}
}

func TestRunStreamAppendStorm(t *testing.T) {
	for _, tc := range []struct {
		name      string
		jetstream bool
		storm     int
	}{{"memory", false, 3000}, {"jetstream", true, 600}} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStreamStack(t, streamStackOptions{jetstream: tc.jetstream, stream: StreamConfig{Buffer: 8192, ReplayPage: 64}})
			runID := "ION-20260101-0000A0A0"
			st.fabricate(t, runID, "org-1")
			tok := tokenOf(t, RoleViewer, "org-1")

			// The storm: batches of telemetry from another goroutine while
			// clients connect, then the run completes.
			stormDone := make(chan struct{})
			go func() {
				defer close(stormDone)
				for i := 0; i < tc.storm; i += 3 {
					var ps []events.Payload
					for j := range 3 {
						ps = append(ps, &events.TelemetryRecorded{JobID: "job-0000a0a00000", FirstStep: (i + j) * 10,
							Samples: map[string][]float64{"time_s": {float64(i + j)}}, Progress: 50, CurrentStep: "storm"})
					}
					st.appendRaw(t, runID, "org-1", ps...)
				}
			}()
			const clients = 6
			results := make([][]wsMsg, clients)
			closes := make([]*websocket.CloseError, clients)
			var wg sync.WaitGroup
			for i := range clients {
				time.Sleep(time.Duration(i) * 3 * time.Millisecond) // land at different points of the storm
				c := mustDial(t, st, "/api/ion/stream/"+runID, tok)
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], closes[i] = c.collect(t, 60*time.Second)
				}()
			}
			<-stormDone
			st.appendRaw(t, runID, "org-1", &events.RunCompleted{JobID: "job-0000a0a00000", Result: eventstest.JSON(map[string]any{"ok": true})})
			wg.Wait()
			recs := st.readRun(t, runID)
			for i := range clients {
				if closes[i].Code != websocket.CloseNormalClosure {
					t.Errorf("client %d: close %d %q, want 1000", i, closes[i].Code, closes[i].Text)
				}
				checkConsecutive(t, fmt.Sprintf("client %d", i), eventRevisions(results[i]), 0, uint64(len(recs)-1))
				if indexOf(results[i], MessageCaughtUp) < 0 {
					t.Errorf("client %d: no caught_up", i)
				}
			}
		})
	}
}

func TestRunStreamFrom(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{timeScale: 0})
	runID := st.createRun(t, `{"steps": 50, "alarm_at": 20}`)
	tok := tokenOf(t, RoleOperator, "org-1")
	// Follow it to the end first.
	msgs, ce := mustDial(t, st, "/api/ion/stream/"+runID, tok).collect(t, 30*time.Second)
	if ce.Code != websocket.CloseNormalClosure || lastEvent(msgs).Type != MessageCompleted {
		t.Fatalf("first pass ended with %v after %s", ce, lastEvent(msgs).Type)
	}
	recs := st.readRun(t, runID)
	end := uint64(len(recs) - 1)
	for _, from := range []uint64{0, 1, 7, end, end + 1, end + 50} {
		t.Run(strconv.FormatUint(from, 10), func(t *testing.T) {
			msgs, ce := mustDial(t, st, fmt.Sprintf("/api/ion/stream/%s?from=%d", runID, from), tok).collect(t, 10*time.Second)
			if ce.Code != websocket.CloseNormalClosure {
				t.Errorf("close = %d %q, want 1000 (a finished run replays and closes)", ce.Code, ce.Text)
			}
			if msgs[0].Type != MessageConnected || msgs[len(msgs)-1].Type != MessageCaughtUp {
				t.Errorf("messages run %s … %s, want connected … caught_up", msgs[0].Type, msgs[len(msgs)-1].Type)
			}
			revs := eventRevisions(msgs)
			if from > end {
				if len(revs) != 0 {
					t.Errorf("from past the end: revisions %v, want none", revs)
				}
				return
			}
			checkConsecutive(t, "replay", revs, from, end)
			checkMapping(t, msgs, recs)
		})
	}
	t.Run("bad_from", func(t *testing.T) {
		_, res, err := dialWS(t, st, "/api/ion/stream/"+runID+"?from=-1&token="+tok, dialOptions{})
		if err == nil || res == nil || res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("from=-1: err %v, response %v; want 422", err, res)
		}
	})
}

// TestRunStreamSlowClient: a client that never reads is closed with 4008
// while another client on the same run gets every event in time and the
// run keeps its pace (that of the same run with nobody watching); the
// slow one resumes from the revision the reason names.
func TestRunStreamSlowClient(t *testing.T) {
	// Small socket buffers on both sides, so that a client that stops
	// reading blocks the server's writes after a few messages, not after
	// megabytes.
	st := newStreamStack(t, streamStackOptions{timeScale: 50, sndbuf: 8192,
		stream: StreamConfig{Buffer: 16, WriteTimeout: time.Minute}})
	tok := tokenOf(t, RoleViewer, "org-1")
	// 1,500 steps: 150 s of process time, 3 s of wall time at scale 50;
	// 150 telemetry events of ~4 KB.
	const recipe = `{"steps": 1500, "width": 20}`
	pace := func(recs []events.Record) time.Duration {
		var started, completed time.Time
		for _, r := range recs {
			switch events.BaseType(r.Type) {
			case events.TypeRunStarted:
				started = r.Time
			case events.TypeRunCompleted:
				completed = r.Time
			}
		}
		return completed.Sub(started)
	}
	// The same run with nobody watching sets the pace.
	control := st.createRun(t, recipe)
	var base time.Duration
	for deadline := time.Now().Add(60 * time.Second); base == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("control run did not complete in 60 s")
		}
		base = max(0, pace(st.readRun(t, control)))
	}

	runID := st.createRun(t, recipe)
	st.waitEvents(t, runID, 3)
	slow, _, err := dialWS(t, st, "/api/ion/stream/"+runID+"?token="+tok, dialOptions{rcvbuf: 4096})
	if err != nil {
		t.Fatalf("dial slow client: %v", err)
	}
	fast := mustDial(t, st, "/api/ion/stream/"+runID, tok)
	msgs, ce := fast.collect(t, 60*time.Second)
	if ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("fast client: close %d %q, want 1000", ce.Code, ce.Text)
	}
	recs := st.readRun(t, runID)
	checkConsecutive(t, "fast client", eventRevisions(msgs), 0, uint64(len(recs)-1))
	// In time: each live event reached the fast client soon after it was
	// stored.
	var worst time.Duration
	cu := indexOf(msgs, MessageCaughtUp)
	for _, m := range msgs[cu+1:] {
		worst = max(worst, m.received.Sub(recs[*m.Revision].Time))
	}
	if worst > time.Second {
		t.Errorf("fast client: worst delay from append to delivery %v, want under 1 s", worst)
	}
	if took := pace(recs); took > base*3/2+500*time.Millisecond {
		t.Errorf("run took %v of wall time, the same run unwatched %v: the slow client slowed it", took, base)
	}

	// Now the slow client reads: what was queued for it, then 4008.
	got, ce := slow.collect(t, 60*time.Second)
	if ce.Code != CloseSlowConsumer || !strings.HasPrefix(ce.Text, "slow consumer: resume with from=") {
		t.Fatalf("slow client: close %d %q, want 4008 slow consumer", ce.Code, ce.Text)
	}
	next, err := strconv.ParseUint(strings.TrimPrefix(ce.Text, "slow consumer: resume with from="), 10, 64)
	if err != nil {
		t.Fatalf("close reason %q: %v", ce.Text, err)
	}
	revs := eventRevisions(got)
	checkConsecutive(t, "slow client", revs, 0, next-1)
	if next >= uint64(len(recs)) {
		t.Fatalf("slow client got everything (%d events): it was never slow", next)
	}
	// It resumes where the reason says and gets the rest.
	rest, ce := mustDial(t, st, fmt.Sprintf("/api/ion/stream/%s?from=%d", runID, next), tok).collect(t, 30*time.Second)
	if ce.Code != websocket.CloseNormalClosure {
		t.Errorf("resumed client: close %d %q, want 1000", ce.Code, ce.Text)
	}
	checkConsecutive(t, "resumed client", eventRevisions(rest), next, uint64(len(recs)-1))
	if dropped := testutil.ToFloat64(st.srv.metrics.closes.WithLabelValues("4008")); dropped < 1 {
		t.Errorf("spectra_stream_closes_total{code=\"4008\"} = %v, want the slow client counted", dropped)
	}
	t.Logf("run %v (unwatched %v); fast client worst delay %v; slow client cut after %d of %d events", pace(recs), base, worst, next, len(recs))
}

// TestRunStreamResync: with a tiny buffer and an append storm, a client
// either follows every event or is told to resume, and what it gets over
// its reconnections is every revision exactly once.
func TestRunStreamResync(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{stream: StreamConfig{Buffer: 4, ReplayPage: 16}})
	runID := "ION-20260101-0000B0B0"
	st.fabricate(t, runID, "org-1")
	tok := tokenOf(t, RoleViewer, "org-1")
	go func() {
		for i := range 400 {
			st.appendRaw(t, runID, "org-1", &events.RunPhaseChanged{JobID: "job-0000b0b00000", Name: "storm", Progress: float64(i) / 10})
		}
		st.appendRaw(t, runID, "org-1", &events.RunCompleted{JobID: "job-0000b0b00000"})
	}()
	var all []uint64
	from, reconnects := uint64(0), 0
	for {
		msgs, ce := mustDial(t, st, fmt.Sprintf("/api/ion/stream/%s?from=%d", runID, from), tok).collect(t, 30*time.Second)
		all = append(all, eventRevisions(msgs)...)
		if ce.Code == websocket.CloseNormalClosure {
			break
		}
		if ce.Code != CloseSlowConsumer {
			t.Fatalf("close %d %q, want 1000 or 4008", ce.Code, ce.Text)
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(ce.Text, "slow consumer: resume with from="), 10, 64)
		if err != nil {
			t.Fatalf("close reason %q: %v", ce.Text, err)
		}
		from = n
		if reconnects++; reconnects > 100 {
			t.Fatal("more than 100 reconnections")
		}
	}
	checkConsecutive(t, "over reconnections", all, 0, uint64(len(st.readRun(t, runID))-1))
	t.Logf("%d reconnections", reconnects)
}

func TestRunStreamEndings(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{timeScale: 0})
	tok := tokenOf(t, RoleViewer, "org-1")
	t.Run("failed", func(t *testing.T) {
		runID := st.createRun(t, `{"steps": 100, "simulate_fault": {"kind": "permanent", "at_progress_pct": 50, "message": "Beam stability check failed"}}`)
		msgs, ce := mustDial(t, st, "/api/ion/stream/"+runID, tok).collect(t, 30*time.Second)
		last := lastEvent(msgs)
		if ce.Code != websocket.CloseNormalClosure || last.Type != MessageError ||
			last.Data["error_message"] != "Beam stability check failed" {
			t.Errorf("ended with %s %v and close %v, want error with the message, then 1000", last.Type, last.Data, ce)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		runID := "ION-20260101-0000C0C0"
		st.fabricate(t, runID, "org-1")
		c := mustDial(t, st, "/api/ion/stream/"+runID, tok)
		st.appendRaw(t, runID, "org-1", &events.RunCancelRequested{JobID: "job-0000c0c00000", Reason: "operator"},
			&events.RunCancelled{JobID: "job-0000c0c00000", Reason: "operator", SafeState: "beam off"})
		msgs, ce := c.collect(t, 10*time.Second)
		var evs []wsMsg
		for _, m := range msgs {
			if m.Revision != nil && m.Type != MessageCaughtUp {
				evs = append(evs, m)
			}
		}
		last := evs[len(evs)-1]
		if ce.Code != websocket.CloseNormalClosure || last.Type != MessageCancelled || last.Data["message"] != "Run was cancelled" {
			t.Errorf("ended with %s %v and close %v, want cancelled, then 1000", last.Type, last.Data, ce)
		}
		if m := evs[len(evs)-2]; m.Type != MessageProgress || m.Data["cancel_requested"] != true {
			t.Errorf("before cancelled: %s %v, want progress with cancel_requested", m.Type, m.Data)
		}
	})
}

func TestStreamAuth(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{})
	runID := "ION-20260101-0000D0D0"
	st.fabricate(t, runID, "org-1")
	path := "/api/ion/stream/" + runID

	refused := func(t *testing.T, path string, hdr http.Header, want int) ErrorDetail {
		t.Helper()
		_, res, err := dialWS(t, st, path, dialOptions{header: hdr})
		if err == nil || res == nil || res.StatusCode != want {
			status := 0
			if res != nil {
				status = res.StatusCode
			}
			t.Fatalf("dial %s: err %v, status %d; want %d before the upgrade", path, err, status, want)
		}
		body, _ := io.ReadAll(res.Body)
		var e ErrorBody
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("error body %s: %v", body, err)
		}
		return e.Error
	}
	t.Run("no_token", func(t *testing.T) {
		refused(t, path, nil, http.StatusUnauthorized)
	})
	t.Run("bad_token", func(t *testing.T) {
		refused(t, path+"?token=not-a-jwt", nil, http.StatusUnauthorized)
	})
	t.Run("bearer_header", func(t *testing.T) {
		hdr := http.Header{"Authorization": {"Bearer " + tokenOf(t, RoleViewer, "org-1")}}
		c, _, err := dialWS(t, st, path, dialOptions{header: hdr})
		if err != nil {
			t.Fatalf("dial with the bearer header: %v", err)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m wsMsg
		if err := c.conn.ReadJSON(&m); err != nil || m.Type != MessageConnected {
			t.Errorf("first message %+v, err %v; want connected", m, err)
		}
	})
	t.Run("other_organisation_is_not_found", func(t *testing.T) {
		other := refused(t, path+"?token="+tokenOf(t, RoleAdmin, "org-2"), nil, http.StatusNotFound)
		missing := refused(t, "/api/ion/stream/ION-20260101-0000FFFF?token="+tokenOf(t, RoleAdmin, "org-1"), nil, http.StatusNotFound)
		if other.Code != missing.Code || other.Message != missing.Message {
			t.Errorf("another organisation's run: %+v; a missing run: %+v; want the same", other, missing)
		}
	})
	t.Run("wrong_kind_is_not_found", func(t *testing.T) {
		refused(t, "/api/rtp/stream/"+runID+"?token="+tokenOf(t, RoleViewer, "org-1"), nil, http.StatusNotFound)
	})
	t.Run("without_telemetry_permission", func(t *testing.T) {
		// No role of the specification's table lacks ion:view_telemetry; take it
		// from the viewer for this test.
		saved := rolePermissions[RoleViewer]
		rolePermissions[RoleViewer] = []Permission{PermIonViewRun, PermJobViewStatus}
		t.Cleanup(func() { rolePermissions[RoleViewer] = saved })
		refused(t, path+"?token="+tokenOf(t, RoleViewer, "org-1"), nil, http.StatusForbidden)
	})
	t.Run("not_an_upgrade", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+st.addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tokenOf(t, RoleViewer, "org-1"))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("plain GET = %d, want 400", res.StatusCode)
		}
	})
}

func TestOrgStream(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{})
	st.fabricate(t, "ION-20260101-0000E001", "org-1")
	st.fabricate(t, "ION-20260101-0000E002", "org-2")
	st.fabricate(t, "RTP-20260101-0000E003", "org-1")
	tok := tokenOf(t, RoleViewer, "org-1")

	all := mustDial(t, st, "/api/stream?from=0", tok)
	ion := mustDial(t, st, "/api/stream?from=0&kind=ion", tok)
	live := mustDial(t, st, "/api/stream", tok) // from the current position: live only
	for _, c := range []*wsClient{all, ion, live} {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	st.appendRaw(t, "ION-20260101-0000E001", "org-1", &events.RunQueued{JobID: "job-0000e0010000", Queue: "ion"})
	st.appendRaw(t, "ION-20260101-0000E002", "org-2", &events.RunQueued{JobID: "job-0000e0020000", Queue: "ion"})
	st.appendRaw(t, "RTP-20260101-0000E003", "org-1", &events.RunQueued{JobID: "job-0000e0030000", Queue: "rtp"})

	read := func(c *wsClient, n int) []wsMsg {
		t.Helper()
		var out []wsMsg
		for len(out) < n {
			var m wsMsg
			if err := c.conn.ReadJSON(&m); err != nil {
				t.Fatalf("read after %v: %v", out, err)
			}
			out = append(out, m)
		}
		return out
	}
	runsOf := func(msgs []wsMsg) []string {
		var ids []string
		for _, m := range msgs {
			if m.Revision != nil && m.Type != MessageCaughtUp {
				ids = append(ids, m.RunID+"@"+strconv.FormatUint(*m.Revision, 10))
			}
		}
		return ids
	}
	// connected, 2 replayed, caught_up, 2 live.
	got := runsOf(read(all, 6))
	want := []string{"ION-20260101-0000E001@0", "RTP-20260101-0000E003@0", "ION-20260101-0000E001@1", "RTP-20260101-0000E003@1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("organisation stream = %v, want %v", got, want)
	}
	if got := runsOf(read(ion, 4)); strings.Join(got, " ") != "ION-20260101-0000E001@0 ION-20260101-0000E001@1" {
		t.Errorf("kind=ion stream = %v", got)
	}
	if got := runsOf(read(live, 4)); strings.Join(got, " ") != "ION-20260101-0000E001@1 RTP-20260101-0000E003@1" {
		t.Errorf("live organisation stream = %v", got)
	}
	if _, res, err := dialWS(t, st, "/api/stream?kind=cvd&token="+tok, dialOptions{}); err == nil || res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("kind=cvd: err %v; want 422", err)
	}
}

func TestStreamShutdown(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{stream: StreamConfig{PingInterval: 50 * time.Millisecond}})
	runID := "ION-20260101-0000F0F0"
	st.fabricate(t, runID, "org-1")
	c := mustDial(t, st, "/api/ion/stream/"+runID, tokenOf(t, RoleViewer, "org-1"))
	pings := 0
	c.conn.SetPingHandler(func(data string) error {
		pings++
		return c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	done := make(chan struct{})
	var msgs []wsMsg
	var ce *websocket.CloseError
	go func() {
		defer close(done)
		msgs, ce = c.collect(t, 20*time.Second)
	}()
	time.Sleep(400 * time.Millisecond) // idle: pings keep it open
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := st.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	<-done
	if ce.Code != websocket.CloseGoingAway || !strings.Contains(ce.Text, "resume with from=1") {
		t.Errorf("close = %d %q, want 1001 naming from=1", ce.Code, ce.Text)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Shutdown took %v", took)
	}
	if pings < 3 {
		t.Errorf("%d pings in 400 ms at a 50 ms interval, want several", pings)
	}
	if len(msgs) != 3 { // connected, RunRequested, caught_up
		t.Errorf("messages = %d, want 3", len(msgs))
	}
	h := st.srv.streams.hub
	h.mu.Lock()
	open := len(h.sockets)
	h.mu.Unlock()
	if open != 0 {
		t.Errorf("%d sockets still tracked after Shutdown", open)
	}
	select {
	case <-h.loop:
	default:
		t.Error("hub subscription loop still running after Shutdown")
	}
}

func TestStreamMessageMapping(t *testing.T) {
	rec := func(p events.Payload) events.Record {
		ev, err := events.New(p, events.Metadata{OrgID: "org-1"})
		if err != nil {
			t.Fatal(err)
		}
		return events.Record{Stream: "run-ION-20260101-00000001", Revision: 3, Position: 9, Type: ev.Type, Data: ev.Data,
			Time: time.Unix(0, 0)}
	}
	alarm := process.Alarm{Source: process.SourceFDC, Parameter: "beam_current_ma", Rule: "CUSUM+", Message: "drift",
		Severity: process.SeverityWarning}
	cases := []struct {
		name string
		p    events.Payload
		typ  string
		data map[string]any
	}{
		{"phase", &events.RunPhaseChanged{JobID: "j", Name: "Simulator set-up", Progress: 10}, MessageProgress,
			map[string]any{"status": "running", "progress": 10.0, "current_step": "Simulator set-up"}},
		{"paused", &events.RunPaused{JobID: "j", Step: 7}, MessageProgress, map[string]any{"status": "paused"}},
		{"fdc", &events.FDCAlarm{JobID: "j", Alarm: alarm}, MessageAlert,
			map[string]any{"parameter": "beam_current_ma", "severity": "warning", "rule": "CUSUM+", "source": "fdc"}},
		{"time_limit", &events.RunTimeLimitWarning{JobID: "j", Limit: "soft", Reason: "late"}, MessageAlert,
			map[string]any{"source": "time_limit", "rule": "soft_time_limit", "message": "late"}},
		{"retry", &events.RunRetryScheduled{JobID: "j", Attempt: 1}, MessageProgress,
			map[string]any{"status": "retrying", "current_step": "Retrying (attempt 2)"}},
		{"failed", &events.RunFailed{JobID: "j", Error: "boom"}, MessageError,
			map[string]any{"error_message": "boom", "status": "failed"}},
		{"completed", &events.RunCompleted{JobID: "j", Result: eventstest.JSON(map[string]any{"final_temp_c": 400.0})}, MessageCompleted,
			map[string]any{"final_temp_c": 400.0, "progress": 100.0, "status": "completed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newStreamMessage(rec(tc.p))
			data, _ := json.Marshal(m)
			var got wsMsg
			_ = json.Unmarshal(data, &got)
			if got.Type != tc.typ || *got.Revision != 3 || *got.Position != 9 || got.RunID != "ION-20260101-00000001" {
				t.Errorf("newStreamMessage(%s) = %s", tc.name, data)
			}
			for k, v := range tc.data {
				if got.Data[k] != v {
					t.Errorf("newStreamMessage(%s).data[%s] = %v, want %v", tc.name, k, got.Data[k], v)
				}
			}
		})
	}
	if m := newStreamMessage(events.Record{Stream: "run-X-1", Type: "SomethingNew.v1", Data: json.RawMessage(`{}`)}); m.Type != MessageProgress || m.Event != "SomethingNew" {
		t.Errorf("unknown type → %s %s, want progress naming it", m.Type, m.Event)
	}
}

// TestStreamCapsPerPrincipal: a user holds at most MaxSocketsPerPrincipal
// streams; one more is refused with 429 before the upgrade, while another
// user (here of another organisation) still gets in, and a closed stream
// frees its place. With one replay slot per user, a user's second socket
// replays after the first, and both replay everything.
func TestStreamCapsPerPrincipal(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{stream: StreamConfig{MaxSocketsPerPrincipal: 2, MaxReplaysPerPrincipal: 1}})
	st.fabricate(t, "ION-20260101-0000C001", "org-1")
	st.fabricate(t, "ION-20260101-0000C002", "org-2")
	tok1, tok2 := tokenOf(t, RoleViewer, "org-1"), tokenOf(t, RoleViewer, "org-2")
	a := mustDial(t, st, "/api/stream?from=0", tok1)
	b := mustDial(t, st, "/api/stream?from=0", tok1)
	for _, c := range []*wsClient{a, b} {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			var m wsMsg
			if err := c.conn.ReadJSON(&m); err != nil {
				t.Fatalf("read: %v", err)
			}
			if m.Type == MessageCaughtUp {
				if got := m.Data["replayed"]; got != float64(1) {
					t.Errorf("replayed %v, want 1 (org-1's one event)", got)
				}
				break
			}
		}
	}
	if _, res, err := dialWS(t, st, "/api/stream?from=0&token="+tok1, dialOptions{}); err == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third stream of a user: err %v; want 429", err)
	}
	mustDial(t, st, "/api/stream?from=0", tok2) // another user is not affected
	_ = a.conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _, err := dialWS(t, st, "/api/stream?from=0&token="+tok1, dialOptions{})
		if err == nil {
			_ = c.conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream did not free its place: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
