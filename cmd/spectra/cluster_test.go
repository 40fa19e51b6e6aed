package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spectra-fab/spectra/api"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
)

// Three real spectra processes on 127.0.0.1 form one cluster: their
// embedded NATS servers route to each other (R3 log) and their actor
// systems form one protoactor cluster. These tests run the binary, not
// the library in-process: protoactor's cluster has data races of its own
// under -race (reference: upstream #1131/#1108), which separate processes
// keep out of our race detector.

const clusterUser, clusterPassword = "spectra", "cluster-test-password-0123456789"

// clusterNode is one node: a server process plus its cluster addresses.
type clusterNode struct {
	*server
	name       string
	clusterArg string // route address; remoting on port+1, NATS clients on port+2
	natsAddr   string
}

// freeTriple finds a port P with P, P+1 and P+2 free on 127.0.0.1.
func freeTriple(t testing.TB) int {
	t.Helper()
	for range 200 {
		p := 20000 + rand.IntN(40000)
		ok := true
		var ls []net.Listener
		for d := range 3 {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+d))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no three consecutive free ports")
	return 0
}

// startCluster starts n nodes at once (a node is ready only once the
// others have joined: R3 needs three servers) and waits for all.
func startCluster(t *testing.T, n int, args ...string) []*clusterNode {
	t.Helper()
	nodes := make([]*clusterNode, n)
	var peers []string
	for i := range nodes {
		p := freeTriple(t)
		nodes[i] = &clusterNode{name: fmt.Sprintf("node-%c", 'a'+i), clusterArg: "127.0.0.1:" + strconv.Itoa(p),
			natsAddr: "127.0.0.1:" + strconv.Itoa(p+2)}
		peers = append(peers, nodes[i].clusterArg)
	}
	for _, cn := range nodes {
		a := append([]string{"--node", cn.name, "--cluster-listen", cn.clusterArg, "--cluster-peers", strings.Join(peers, ",")}, args...)
		cn.server = &server{t: t, addr: freePort(t), dataDir: t.TempDir(), args: a}
		cn.launch()
		t.Cleanup(cn.stop)
	}
	for _, cn := range nodes {
		cn.waitReady(90 * time.Second)
	}
	return nodes
}

// launch starts the process without waiting for it to be ready.
func (s *server) launch() {
	args := append([]string{"serve", "--http", s.addr, "--data-dir", s.dataDir,
		"--rate-limit-read", "1000000", "--rate-limit-create", "100000", "--rate-limit-command", "100000"}, s.args...)
	s.cmd = exec.Command(binPath, args...)
	s.cmd.Env = append(os.Environ(), "SPECTRA_JWT_SECRET="+testSecret,
		"SPECTRA_NATS_USER="+clusterUser, "SPECTRA_NATS_PASSWORD="+clusterPassword)
	s.logs = &syncBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start spectra: %v", err)
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
}

func (s *server) waitReady(within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.t.Fatalf("spectra exited at start:\n%s", tail(s.logs.String(), 4000))
		default:
		}
		if r, err := httpGet("http://" + s.addr + "/readyz"); err == nil && r == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("spectra not ready in %s:\n%s", within, tail(s.logs.String(), 4000))
}

// metric reads one unlabelled gauge from /metrics.
func (s *server) metric(t testing.TB, name string) float64 {
	t.Helper()
	r := s.do(t, "GET", "/metrics", "", nil)
	m := regexp.MustCompile(`(?m)^` + name + ` ([0-9.e+]+)$`).FindSubmatch(r.body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// store opens the cluster's log through a node's NATS, with credentials.
func (cn *clusterNode) store(t testing.TB) *jetstream.Store {
	t.Helper()
	nc, err := nats.Connect("nats://"+cn.natsAddr, nats.UserInfo(clusterUser, clusterPassword))
	if err != nil {
		t.Fatalf("connect to %s's NATS: %v", cn.name, err)
	}
	t.Cleanup(nc.Close)
	st, err := jetstream.New(t.Context(), nc, jetstream.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func readLog(t testing.TB, st *jetstream.Store, runID string) []events.Record {
	t.Helper()
	var err error
	for range 3 { // a read may time out while a replica of the log is down
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var recs []events.Record
		recs, err = st.ReadStream(ctx, events.RunStream(runID), events.Forwards, 0, 0)
		cancel()
		if err == nil {
			return recs
		}
	}
	t.Fatalf("read %s: %v", runID, err)
	return nil
}

func asLines(recs []events.Record) []logLine {
	out := make([]logLine, len(recs))
	for i, r := range recs {
		out[i] = logLine{Revision: r.Revision, Position: r.Position, Type: events.BaseType(r.Type), Data: r.Data}
	}
	return out
}

// createRuns creates n RTP runs, round robin over nodes, and returns
// their run ids.
func createRuns(t *testing.T, nodes []*clusterNode, tok string, n int, extra func(i int) map[string]any) []string {
	t.Helper()
	var ids []string
	for i := range n {
		var x map[string]any
		if extra != nil {
			x = extra(i)
		}
		id, _ := nodes[i%len(nodes)].create(t, "rtp", tok, rtpRecipe(t, x))
		ids = append(ids, id)
	}
	return ids
}

// waitAll waits until every run is finished, asking node s.
func (s *server) waitAll(t *testing.T, tok string, ids []string, within time.Duration) {
	t.Helper()
	for _, id := range ids {
		st := s.waitRun(t, "rtp", id, tok, within)
		if st["status"] != "completed" {
			t.Errorf("run %s ended %v", id, st["status"])
		}
	}
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster: starts three processes")
	}
	// RTP seed runs take 60 s of process time: about 24 s at this scale.
	nodes := startCluster(t, 3, "--time-scale", "2.5", "--queue-limit", "2")
	tok := token(t, "admin", "org-1")

	t.Run("nats_refuses_connections_without_credentials", func(t *testing.T) {
		for _, cn := range nodes {
			if nc, err := nats.Connect("nats://" + cn.natsAddr); err == nil {
				nc.Close()
				t.Errorf("%s: NATS accepted a client without credentials", cn.name)
			}
			if nc, err := nats.Connect("nats://"+cn.natsAddr, nats.UserInfo(clusterUser, "wrong-password-0123456789")); err == nil {
				nc.Close()
				t.Errorf("%s: NATS accepted a wrong password", cn.name)
			}
			// A route is refused without them as well.
			if nc, err := nats.Connect("nats://" + cn.clusterArg); err == nil {
				nc.Close()
				t.Errorf("%s: the route port accepted a client", cn.name)
			}
		}
		nodes[0].store(t) // and accepted with them
	})

	// A short recipe: about 13 s of process time, 5 s of wall time.
	short := func(tool string) map[string]any {
		return map[string]any{"tool_id": tool, "segments": []map[string]any{
			{"target_temp_c": 400, "duration_s": 5, "ramp_rate_c_s": 50}}}
	}

	t.Run("create_on_a_stream_from_c_read_your_writes_on_b", func(t *testing.T) {
		cr := nodes[0].do(t, "POST", "/api/rtp/runs", tok, rtpRecipe(t, short("STREAM")))
		if cr.status != 201 {
			t.Fatalf("create on %s = %d %s", nodes[0].name, cr.status, cr.body)
		}
		id := cr.json(t)["run_id"].(string)
		// C knows the run once its read models reach the create's position
		// (a moment after A's reply, if at all behind).
		nodes[2].readYourWrite(t, "/api/rtp/runs/"+id, tok, cr.header.Get("X-Spectra-Position"))
		c := &client{base: "http://" + nodes[2].addr, token: tok, http: httpClient}
		var revs []uint64
		caughtUp, live := false, 0
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		err := c.follow(ctx, "rtp", id, 0, func(m streamMessage) (bool, error) {
			if m.Type == api.MessageCaughtUp {
				caughtUp = true
				return false, nil
			}
			if m.Revision == nil {
				return false, nil
			}
			revs = append(revs, *m.Revision)
			if caughtUp {
				live++
			}
			return m.Event == "RunCompleted", nil
		})
		if err != nil {
			t.Fatalf("stream %s from %s: %v", id, nodes[2].name, err)
		}
		for i, r := range revs {
			if r != uint64(i) {
				t.Fatalf("stream from %s: revision %d at %d (gap or duplicate): %v", nodes[2].name, r, i, revs)
			}
		}
		if !caughtUp || live == 0 {
			t.Errorf("stream from %s: caught up %v, %d live messages; want replay then live", nodes[2].name, caughtUp, live)
		}
		// A write on A, read at once on B with the position it returned.
		r := nodes[0].do(t, "POST", "/api/rtp/runs", tok, rtpRecipe(t, short("RYW")))
		pos := r.header.Get("X-Spectra-Position")
		if r.status != 201 || pos == "" {
			t.Fatalf("create on %s = %d %s (position %q)", nodes[0].name, r.status, r.body, pos)
		}
		id2 := r.json(t)["run_id"].(string)
		nodes[1].readYourWrite(t, "/api/rtp/runs/"+id2, tok, pos)
		nodes[1].waitRun(t, "rtp", id2, tok, time.Minute)
	})

	t.Run("queue_limit_2_across_3_nodes", func(t *testing.T) {
		ids := createRuns(t, nodes, tok, 7, func(int) map[string]any { return short("LIMIT") })
		nodes[1].waitAll(t, tok, ids, 3*time.Minute)
		st := nodes[2].store(t)
		logs := map[string][]logLine{}
		for _, id := range ids {
			logs[id] = asLines(readLog(t, st, id))
			checkRunLog(t, id, logs[id])
		}
		if p := peakFromLogs(logs); p != 2 {
			t.Errorf("peak running in queue rtp/LIMIT, from the log = %d, want 2", p)
		}
	})

	t.Run("kill_owner_of_most_runs", func(t *testing.T) {
		// One tool per run: each run is its own queue, so all 30 run at
		// once despite --queue-limit 2.
		ids := createRuns(t, nodes, tok, 30, func(i int) map[string]any { return map[string]any{"tool_id": fmt.Sprintf("KILL-%d", i)} })
		time.Sleep(4 * time.Second)
		victim, most := -1, -1.0
		for i, cn := range nodes {
			g := cn.metric(t, "spectra_cluster_grains")
			t.Logf("%s hosts %v grains", cn.name, g)
			if g > most {
				victim, most = i, g
			}
		}
		killed := time.Now()
		nodes[victim].kill9()
		survivor := nodes[(victim+1)%3]
		survivor.waitAll(t, tok, ids, 3*time.Minute)

		resumed := resumedAfter(t, survivor.store(t), ids, nodes[victim].name, killed)
		slices.Sort(resumed)
		if len(resumed) == 0 {
			t.Fatalf("no run of %s resumed elsewhere", nodes[victim].name)
		}
		t.Logf("%d runs resumed on survivors after kill -9 of %s; resume after kill (from the log): min %v, median %v, max %v",
			len(resumed), nodes[victim].name, resumed[0].Round(time.Millisecond), resumed[len(resumed)/2].Round(time.Millisecond),
			resumed[len(resumed)-1].Round(time.Millisecond))
		// The node comes back (same data directory) for the next tests.
		nodes[victim].launch()
		nodes[victim].waitReady(90 * time.Second)
	})

	t.Run("sigstop_15s_then_sigcont_no_two_writers", func(t *testing.T) {
		ids := createRuns(t, nodes, tok, 9, func(i int) map[string]any { return map[string]any{"tool_id": fmt.Sprintf("STOP-%d", i)} })
		time.Sleep(3 * time.Second)
		victim, most := 0, -1.0
		for i, cn := range nodes {
			if g := cn.metric(t, "spectra_cluster_grains"); g > most {
				victim, most = i, g
			}
		}
		frozen := nodes[victim]
		_ = frozen.cmd.Process.Signal(syscall.SIGSTOP)
		stopped := time.Now()
		time.Sleep(15 * time.Second)
		_ = frozen.cmd.Process.Signal(syscall.SIGCONT)
		survivor := nodes[(victim+1)%3]
		survivor.waitAll(t, tok, ids, 3*time.Minute)
		st := survivor.store(t)
		for _, id := range ids {
			recs := readLog(t, st, id)
			checkRunLog(t, id, asLines(recs))
			takenOver := false
			for _, r := range recs {
				switch {
				case r.Metadata.Node != frozen.name && r.Time.After(stopped):
					takenOver = true
				case r.Metadata.Node == frozen.name && takenOver:
					t.Errorf("%s: revision %d written by the frozen %s after a survivor took the run over", id, r.Revision, frozen.name)
				}
			}
		}
		// The frozen node finds it fell out of the cluster and stops; it
		// comes back as a new member.
		select {
		case <-frozen.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("%s still running 30 s after SIGCONT; want it to stop (it fell out of the cluster)", frozen.name)
			frozen.stop()
		}
		frozen.launch()
		frozen.waitReady(90 * time.Second)
	})

	t.Run("rolling_restart_under_a_trickle_of_runs", func(t *testing.T) {
		var mu sync.Mutex
		var ids []string
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // a new run every 300 ms, on whichever node answers
			defer close(done)
			body, _ := json.Marshal(rtpRecipe(t, short("ROLL")))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(300 * time.Millisecond):
				}
				for k := range nodes {
					req, _ := http.NewRequest("POST", "http://"+nodes[(i+k)%3].addr+"/api/rtp/runs", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("Content-Type", "application/json")
					resp, err := httpClient.Do(req)
					if err != nil {
						continue
					}
					var m struct {
						RunID string `json:"run_id"`
					}
					_ = json.NewDecoder(resp.Body).Decode(&m)
					resp.Body.Close()
					if resp.StatusCode == 201 {
						mu.Lock()
						ids = append(ids, m.RunID)
						mu.Unlock()
						break
					}
				}
			}
		}()
		created := func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }
		// waitCreated waits for the trickle to reach n runs: runs are
		// created while a node is down and coming back, however fast its
		// restart is.
		waitCreated := func(n int) {
			for deadline := time.Now().Add(60 * time.Second); created() < n && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
		}
		for _, cn := range nodes {
			before := created()
			cn.stop()
			waitCreated(before + 2) // while it is down
			cn.launch()
			cn.waitReady(90 * time.Second)
		}
		waitCreated(10)
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		if len(ids) < 10 {
			t.Fatalf("only %d runs created during the rolling restart", len(ids))
		}
		nodes[0].waitAll(t, tok, ids, 3*time.Minute)
		st := nodes[1].store(t)
		for _, id := range ids {
			checkRunLog(t, id, asLines(readLog(t, st, id)))
		}
		t.Logf("%d runs created during the rolling restart, all completed", len(ids))
	})
}

func httpGet(url string) (int, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// resumedAfter measures, from the log, how long after killed each run the
// victim owned was first written by another node.
func resumedAfter(t *testing.T, st *jetstream.Store, ids []string, victim string, killed time.Time) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, id := range ids {
		recs := readLog(t, st, id)
		checkRunLog(t, id, asLines(recs))
		last := -1
		for i, r := range recs {
			// The node that received the create records RunRequested; the
			// owner records the rest.
			if r.Metadata.Node == victim && events.BaseType(r.Type) != events.TypeRunRequested {
				last = i
			}
		}
		if last < 0 {
			continue
		}
		for _, r := range recs[last+1:] {
			if r.Metadata.Node != victim && r.Time.After(killed) {
				out = append(out, r.Time.Sub(killed))
				break
			}
		}
	}
	return out
}

// TestClusterFailoverDistribution kills the node owning the most runs
// SPECTRA_FAILOVER_KILLS times and reports how long its runs took to
// resume on the survivors, measured from the log. A measurement, not a
// check of speed: it runs only when asked.
func TestClusterFailoverDistribution(t *testing.T) {
	kills, _ := strconv.Atoi(os.Getenv("SPECTRA_FAILOVER_KILLS"))
	if kills <= 0 {
		t.Skip("set SPECTRA_FAILOVER_KILLS=10 to measure failover")
	}
	nodes := startCluster(t, 3, "--time-scale", "2.5", "--queue-limit", "100")
	tok := token(t, "admin", "org-1")
	var all []time.Duration
	for k := range kills {
		ids := createRuns(t, nodes, tok, 9, func(i int) map[string]any { return map[string]any{"tool_id": fmt.Sprintf("F%d-%d", k, i)} })
		time.Sleep(3 * time.Second)
		victim, most := 0, -1.0
		for i, cn := range nodes {
			if g := cn.metric(t, "spectra_cluster_grains"); g > most {
				victim, most = i, g
			}
		}
		killed := time.Now()
		nodes[victim].kill9()
		survivor := nodes[(victim+1)%3]
		survivor.waitAll(t, tok, ids, 3*time.Minute)
		rs := resumedAfter(t, survivor.store(t), ids, nodes[victim].name, killed)
		slices.Sort(rs)
		if len(rs) > 0 {
			t.Logf("kill %d of %s: %d runs resumed after %v", k+1, nodes[victim].name, len(rs), rs)
		}
		all = append(all, rs...)
		nodes[victim].launch()
		nodes[victim].waitReady(90 * time.Second)
	}
	slices.Sort(all)
	if len(all) == 0 {
		t.Fatal("no run resumed")
	}
	q := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))].Round(time.Millisecond) }
	t.Logf("failover over %d kills, %d runs: min %v, p50 %v, p90 %v, max %v", kills, len(all), q(0), q(0.5), q(0.9), q(1))
}

// readYourWrite reads path with X-Min-Position: the node waits (up to its
// read-your-writes bound, 2 s) for its read models to reach the position.
// On this shared 2-core machine a node's read models can lag longer, so
// the read is asked up to three times.
func (cn *clusterNode) readYourWrite(t *testing.T, path, tok, pos string) {
	t.Helper()
	var g reply
	for range 3 {
		if g = cn.do(t, "GET", path, tok, nil, "X-Min-Position", pos); g.status == 200 {
			return
		}
	}
	t.Fatalf("read-your-writes of %s on %s = %d %s", path, cn.name, g.status, g.body)
}
