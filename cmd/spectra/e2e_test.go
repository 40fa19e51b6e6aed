package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/internal/leaktest"
)

// These tests run the real binary as a process: real HTTP on loopback, the
// embedded NATS store on disk, SIGTERM and kill -9.

var binPath string

func TestMain(m *testing.M) {
	if os.Getenv(envTenantViewer) != "" { // BenchmarkTenantIsolation's viewer: needs no binary
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "spectra-bin-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "spectra")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build spectra: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		// The servers are processes; what runs in here are the tests'
		// clients: their idle keep-alive connections end now, and nothing
		// else may be left.
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(leaktest.Options()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// syncBuffer collects a process's output; the process writes while the
// test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const testSecret = "e2e-test-secret-0123456789abcdef-0123456789"

// server is a spectra serve process.
type server struct {
	t       testing.TB
	cmd     *exec.Cmd
	addr    string
	dataDir string
	args    []string
	logs    *syncBuffer
	exited  chan struct{}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer starts spectra serve on a fresh port and waits for /readyz.
func startServer(t testing.TB, dataDir string, args ...string) *server {
	t.Helper()
	s := &server{t: t, addr: freePort(t), dataDir: dataDir, args: args}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	// The tests poll fast with one token: lift the per-principal limits
	// (their own tests are in the api package); a test's args override.
	args := append([]string{"serve", "--http", s.addr, "--data-dir", s.dataDir, "--node", "e2e",
		"--rate-limit-read", "1000000", "--rate-limit-create", "100000", "--rate-limit-command", "100000"}, s.args...)
	s.cmd = exec.Command(binPath, args...)
	s.cmd.Env = append(os.Environ(), "SPECTRA_JWT_SECRET="+testSecret)
	s.logs = &syncBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start spectra: %v", err)
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.t.Fatalf("spectra exited at start:\n%s", s.logs)
		default:
		}
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("spectra not ready in time:\n%s", s.logs)
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Errorf("spectra did not stop on SIGTERM within 30 s")
	}
}

// kill9 kills the process without warning.
func (s *server) kill9() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func token(t testing.TB, role, org string) string {
	t.Helper()
	tok, err := api.IssueToken([]byte(testSecret), role+"-user", role+"@example.com", org, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type reply struct {
	status int
	body   []byte
	header http.Header
}

func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

func (s *server) do(t testing.TB, method, path, tok string, body any, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+s.addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: data, header: resp.Header}
}

func readExample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitRun polls a run until its status is final and returns it.
func (s *server) waitRun(t testing.TB, kind, runID, tok string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	var last map[string]any
	for time.Now().Before(deadline) {
		r := s.do(t, "GET", "/api/"+kind+"/runs/"+runID, tok, nil)
		if r.status == 200 {
			last = r.json(t)
			switch last["status"] {
			case "completed", "failed", "cancelled":
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("run %s not finished in %s; last %v\nserver log:\n%s", runID, within, last, tail(s.logs.String(), 3000))
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// logLine is one JSON line of GET /api/jobs/{id}/logs.
type logLine struct {
	Revision uint64          `json:"revision"`
	Position uint64          `json:"position"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
}

func (s *server) events(t testing.TB, jobID, tok string) []logLine {
	t.Helper()
	r := s.do(t, "GET", "/api/jobs/"+jobID+"/logs", tok, nil, "Accept", "application/x-ndjson")
	if r.status != 200 {
		t.Fatalf("logs %s: %d %s", jobID, r.status, r.body)
	}
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// checkRunLog verifies a single-job run's log: gapless revisions, events
// that happen once happen once, every telemetry step of an attempt once.
func checkRunLog(t testing.TB, runID string, lines []logLine) {
	t.Helper()
	count := map[string]int{}
	steps := map[[2]int]bool{}
	for i, l := range lines {
		if l.Revision != uint64(i) {
			t.Fatalf("%s: line %d has revision %d (gap or duplicate)", runID, i, l.Revision)
		}
		count[l.Type]++
		if l.Type == "TelemetryRecorded" {
			var tr struct {
				Attempt   int                  `json:"attempt"`
				FirstStep int                  `json:"first_step"`
				Samples   map[string][]float64 `json:"samples"`
			}
			_ = json.Unmarshal(l.Data, &tr)
			for k := range tr.Samples["time_s"] {
				key := [2]int{tr.Attempt, tr.FirstStep + k}
				if steps[key] {
					t.Fatalf("%s: telemetry step %v recorded twice", runID, key)
				}
				steps[key] = true
			}
		}
	}
	for _, once := range []string{"RunRequested", "RunQueued", "RunStarted", "RunCompleted"} {
		if count[once] != 1 {
			t.Errorf("%s: %s occurs %d times, want once", runID, once, count[once])
		}
	}
}

func TestSeedRecipesRunToCompletion(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "200")
	eng := token(t, "engineer", "org-1")

	ion := s.do(t, "POST", "/api/ion/runs", eng, readExample(t, "ion-seed.json"))
	if ion.status != 201 {
		t.Fatalf("POST /api/ion/runs = %d %s", ion.status, ion.body)
	}
	rtp := s.do(t, "POST", "/api/rtp/runs", eng, readExample(t, "rtp-seed.json"))
	if rtp.status != 201 {
		t.Fatalf("POST /api/rtp/runs = %d %s", rtp.status, rtp.body)
	}
	ionID, ionJob := ion.json(t)["run_id"].(string), ion.json(t)["job_id"].(string)
	rtpID := rtp.json(t)["run_id"].(string)
	if !strings.HasPrefix(ionID, "ION-") || !strings.HasPrefix(rtpID, "RTP-") || ion.json(t)["status"] != "queued" {
		t.Fatalf("create replies: %s / %s", ion.body, rtp.body)
	}
	// A GET right after the POST sees the run.
	if r := s.do(t, "GET", "/api/ion/runs/"+ionID, eng, nil); r.status != 200 {
		t.Fatalf("GET right after POST = %d %s", r.status, r.body)
	}

	ir := s.waitRun(t, "ion", ionID, eng, 60*time.Second)
	if ir["status"] != "completed" || ir["progress"] != 100.0 || ir["current_step"] != "Completed" {
		t.Fatalf("ion run = %v", ir)
	}
	dose := ir["final_dose_atoms_cm2"].(float64)
	if d := (dose - 1e15) / 1e15; d > 0.005 || d < -0.005 {
		t.Errorf("final_dose_atoms_cm2 = %g, want 1e15 ± 0.5 %%", dose)
	}
	vm, _ := ir["vm_prediction"].(map[string]any)
	if vm["sheet_resistance_ohm_sq"] == nil || vm["junction_depth_um"] == nil || vm["activation_pct"] == nil {
		t.Errorf("vm_prediction = %v", vm)
	}
	for _, k := range []string{"started_at", "completed_at", "duration_seconds", "recipe", "artifacts", "logs_uri"} {
		if ir[k] == nil {
			t.Errorf("ion run lacks %s: %v", k, ir)
		}
	}

	rr := s.waitRun(t, "rtp", rtpID, eng, 60*time.Second)
	if rr["status"] != "completed" {
		t.Fatalf("rtp run = %v", rr)
	}
	if ft := rr["final_temp_c"].(float64); ft < 398 || ft > 402 {
		t.Errorf("final_temp_c = %g, want 400 ± 2", ft)
	}
	for _, k := range []string{"max_overshoot_c", "avg_ramp_error_c", "thermal_budget", "vm_prediction"} {
		if rr[k] == nil {
			t.Errorf("rtp run lacks %s", k)
		}
	}

	job := s.do(t, "GET", "/api/jobs/"+ionJob, eng, nil)
	if job.status != 200 || job.json(t)["status"] != "completed" || job.json(t)["job_type"] != "ion_implant" {
		t.Errorf("GET job = %d %s", job.status, job.body)
	}
	list := s.do(t, "GET", "/api/jobs?page=1&page_size=10", eng, nil).json(t)
	if list["total"] != 2.0 {
		t.Errorf("jobs list = %v", list)
	}
	if l := s.do(t, "GET", "/api/ion/runs?status=completed", eng, nil).json(t); l["total"] != 1.0 {
		t.Errorf("ion runs list = %v", l)
	}
	checkRunLog(t, ionID, s.events(t, ionJob, eng))
	metrics := s.do(t, "GET", "/metrics", "", nil)
	for _, m := range []string{"spectra_runs_unfinished 0", "spectra_run_actors_fenced_total 0", "spectra_projection_lag", "spectra_http_requests_total"} {
		if !strings.Contains(string(metrics.body), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}

	// The synchronous endpoints.
	prof := s.do(t, "POST", "/api/ion/simulate/dose_profile", eng,
		`{"species":"B","energy_kev":20,"dose_atoms_cm2":5e14,"tilt_deg":7,"twist_deg":0}`)
	if prof.status != 200 {
		t.Fatalf("dose_profile = %d %s", prof.status, prof.body)
	}
	p1, _ := prof.json(t)["profile_1d"].(map[string]any)
	if rp, _ := p1["projected_range_nm"].(float64); rp < 50 || rp > 90 {
		t.Errorf("B 20 keV projected_range_nm = %v, want about 66–72", p1["projected_range_nm"])
	}
	if r := s.do(t, "POST", "/api/ion/simulate/dose_profile", eng, `{"species":"B","energy_kev":900,"dose_atoms_cm2":5e14}`); r.status != 422 {
		t.Errorf("dose_profile at 900 keV = %d, want 422", r.status)
	}
	tune := s.do(t, "POST", "/api/rtp/tune/controller", eng,
		`{"controller_type":"pid","recipe":{"segments":[{"target_temp_c":1000,"duration_s":30}]},"optimization_target":"minimize_overshoot"}`)
	if tune.status != 200 {
		t.Fatalf("tune = %d %s", tune.status, tune.body)
	}
	tj := tune.json(t)
	perf, _ := tj["expected_performance"].(map[string]any)
	if tj["tuning_method"] != "relay_feedback" || tj["tuning_id"] == nil || perf["overshoot_pct"].(float64) >= 2 {
		t.Errorf("tune = %s", tune.body)
	}
	if r := s.do(t, "POST", "/api/rtp/tune/controller", token(t, "operator", "org-1"), `{}`); r.status != 403 {
		t.Errorf("operator tuning = %d, want 403", r.status)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	s := startServer(t, t.TempDir(), "--time-scale", "0")
	eng := token(t, "engineer", "org-1")
	seed := map[string]any{}
	_ = json.Unmarshal(readExample(t, "ion-seed.json"), &seed)
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range seed {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"malformed json", `{"species": "P",`, "body"},
		{"unknown species", with("species", "Xe"), "species"},
		{"energy too high", with("energy_kev", 500), "energy_kev"},
		{"dose too low", with("dose_atoms_cm2", 1e9), "dose_atoms_cm2"},
		{"current too high", with("beam_current_ma", 80), "beam_current_ma"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "POST", "/api/ion/runs", eng, tc.body)
			if r.status != 422 {
				t.Fatalf("status = %d %s, want 422", r.status, r.body)
			}
			var e struct {
				Error struct {
					Code   string `json:"code"`
					Fields []struct {
						Field   string `json:"field"`
						Value   any    `json:"value"`
						Allowed string `json:"allowed"`
					} `json:"fields"`
				} `json:"error"`
			}
			_ = json.Unmarshal(r.body, &e)
			found := false
			for _, f := range e.Error.Fields {
				if f.Field == tc.field && f.Allowed != "" {
					found = true
				}
			}
			if !found {
				t.Errorf("error %s does not name field %s with its allowed range", r.body, tc.field)
			}
		})
	}
	rtp := rtpRecipe(t, nil)
	rtp["segments"] = []any{map[string]any{"target_temp_c": 1000, "duration_s": 10, "ramp_rate_c_s": 150}}
	r := s.do(t, "POST", "/api/rtp/runs", eng, rtp)
	if r.status != 422 || !strings.Contains(string(r.body), "segments[0].ramp_rate_c_s") {
		t.Errorf("a ramp faster than allowed = %d %s, want 422 naming segments[0].ramp_rate_c_s", r.status, r.body)
	}
	if r := s.do(t, "POST", "/api/ion/simulate/dose_profile", eng, `{"species":"Xe","energy_kev":20,"dose_atoms_cm2":5e14}`); r.status != 422 || !strings.Contains(string(r.body), `"species"`) {
		t.Errorf("dose_profile with an unknown species = %d %s, want 422 naming species", r.status, r.body)
	}
	if r := s.do(t, "GET", "/api/jobs", eng, nil).json(t); r["total"] != 0.0 {
		t.Errorf("after refused creates jobs total = %v, want 0", r["total"])
	}
	if r := s.do(t, "POST", "/api/ion/runs", "", readExample(t, "ion-seed.json")); r.status != 401 {
		t.Errorf("no token = %d, want 401", r.status)
	}
	forged, _ := api.IssueToken([]byte("another-secret-another-secret-0123456789"), "x", "x@x", "org-1", "admin", time.Hour)
	if r := s.do(t, "POST", "/api/ion/runs", forged, readExample(t, "ion-seed.json")); r.status != 401 {
		t.Errorf("bad signature = %d, want 401", r.status)
	}
	if r := s.do(t, "POST", "/api/ion/runs", token(t, "viewer", "org-1"), readExample(t, "ion-seed.json")); r.status != 403 {
		t.Errorf("viewer create = %d, want 403", r.status)
	}
	created := s.do(t, "POST", "/api/ion/runs", eng, readExample(t, "ion-seed.json")).json(t)
	other := token(t, "admin", "org-2")
	if r := s.do(t, "GET", "/api/ion/runs/"+created["run_id"].(string), other, nil); r.status != 404 {
		t.Errorf("other org's run = %d, want 404", r.status)
	}
	if r := s.do(t, "GET", "/api/jobs/"+created["job_id"].(string), other, nil); r.status != 404 {
		t.Errorf("other org's job = %d, want 404", r.status)
	}
}

func TestServeRefusesWeakSecret(t *testing.T) {
	cmd := exec.Command(binPath, "serve", "--http", freePort(t), "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "SPECTRA_JWT_SECRET=short")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "32 bytes") {
		t.Fatalf("serve with a short secret: err %v, output %s; want a refusal naming the 32-byte minimum", err, out)
	}
}

func TestRestartKeepsRunsAndKill9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	dir := t.TempDir()
	s := startServer(t, dir, "--time-scale", "10", "--queue-limit", "10")
	eng := token(t, "engineer", "org-1")
	type run struct{ id, job, kind string }
	var runs []run
	for i := range 10 {
		kind, file := "ion", "ion-seed.json"
		if i%2 == 1 {
			kind, file = "rtp", "rtp-seed.json"
		}
		r := s.do(t, "POST", "/api/"+kind+"/runs", eng, readExample(t, file))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		m := r.json(t)
		runs = append(runs, run{m["run_id"].(string), m["job_id"].(string), kind})
	}
	time.Sleep(1500 * time.Millisecond) // mid-flight: ion ≈ 2 s, rtp ≈ 6 s of wall time at scale 10
	s.kill9()

	s.start() // same data directory, same port
	for _, r := range runs {
		got := s.waitRun(t, r.kind, r.id, eng, 90*time.Second)
		if got["status"] != "completed" {
			t.Errorf("%s after kill -9 = %v", r.id, got["status"])
		}
		checkRunLog(t, r.id, s.events(t, r.job, eng))
	}

	s.stop()
	s.start()
	list := s.do(t, "GET", "/api/jobs?page_size=100", eng, nil).json(t)
	if list["total"] != 10.0 {
		t.Errorf("after a clean restart jobs total = %v, want 10", list["total"])
	}
}
