package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/spc"
	"github.com/spectra-fab/spectra/projections"
)

// implanter is a deterministic stand-in for the ion engine, with the same
// R2R contract: it reads dose_setpoint_scale and reports dose_error_pct,
// mean_beam_current_ma and dose_uniformity_pct. The tool delivers 2 % less
// dose than it is asked for, and a recipe's simulate_disturbance.offset_pct
// raises its beam current.
type implanter struct{}

type implantRecipe struct {
	Species     string               `json:"species"`
	EnergyKeV   float64              `json:"energy_kev"`
	Disturbance *process.Disturbance `json:"simulate_disturbance"`
}

func (implanter) Validate(recipe json.RawMessage) error {
	var r implantRecipe
	if err := json.Unmarshal(recipe, &r); err != nil || r.Species == "" {
		return &process.ValidationError{Fields: []process.FieldError{{Field: "species", Message: "required"}}}
	}
	return nil
}

func (implanter) New(recipe json.RawMessage, opts process.Options) (process.Engine, error) {
	var r implantRecipe
	if err := json.Unmarshal(recipe, &r); err != nil {
		return nil, err
	}
	scale, ok := opts.R2R["dose_setpoint_scale"]
	if !ok {
		scale = 1
	}
	off := 0.0
	if r.Disturbance != nil {
		off = r.Disturbance.OffsetPct
	}
	return &implant{scale: scale, off: off, rng: rand.New(rand.NewPCG(uint64(opts.Seed), 1))}, nil
}

type implant struct {
	scale, off float64
	rng        *rand.Rand
	n          int
}

func (e *implant) Kind() process.Kind         { return process.KindIon }
func (e *implant) SetupMarks() []process.Mark { return nil }
func (e *implant) FinishMarks() []process.Mark {
	return nil
}
func (e *implant) SafeState() string { return "beam off" }
func (e *implant) Step() process.StepResult {
	e.n++
	return process.StepResult{N: e.n - 1, TimeS: float64(e.n) * process.Period, Progress: float64(20 + 6*e.n),
		StepName: "Implanting", Sample: process.Sample{"time_s": float64(e.n) * process.Period}, Done: e.n == 10}
}
func (e *implant) Finish() process.Outcome {
	doseErr := 100*(e.scale*0.98-1) + 0.02*e.rng.NormFloat64()
	beam := 5*(1+e.off/100) + 0.01*e.rng.NormFloat64()
	obs := &ion.Observations{DoseErrorPct: doseErr, MeanBeamCurrentMA: beam, DoseUniformityPct: 0.5 + 0.01*e.rng.NormFloat64()}
	res := &ion.Result{DoseErrorPct: doseErr, MeanBeamCurrentMA: beam}
	return process.Outcome{Result: res, R2R: obs}
}

const secret = "views-test-secret-0123456789abcdef-0123456789"

// node is a real node (embedded JetStream, actors, projections) serving
// HTTP on loopback.
type testNode struct {
	*node.Node
	url string
}

func startNode(t *testing.T) *testNode {
	t.Helper()
	n, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), NoSync: true, JWTSecret: []byte(secret),
		TimeScale: 0, AllowFaultInjection: true, QueueLimit: 1,
		Engines: map[process.Kind]actors.EngineFactory{process.KindIon: implanter{}}})
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.API().Serve(ln)
	}()
	t.Cleanup(func() {
		n.Close()
		<-done
	})
	return &testNode{Node: n, url: "http://" + ln.Addr().String()}
}

func tokenFor(t *testing.T, role, org string) string {
	t.Helper()
	tok, err := api.IssueToken([]byte(secret), "u-"+role, role+"@example.com", org, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var client = &http.Client{Timeout: 10 * time.Second}

// call sends a request and decodes a JSON answer into out (when not nil).
func call(t *testing.T, method, url, tok, body string, out any) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, data, err)
		}
	}
	return resp.StatusCode, resp.Header
}

type created struct {
	RunID    string `json:"run_id"`
	Position uint64 `json:"position"`
}

func submit(t *testing.T, n *testNode, tok, tool string, offsetPct float64) created {
	t.Helper()
	body := fmt.Sprintf(`{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"beam_current_ma":5,"tool_id":%q}`, tool)
	if offsetPct != 0 {
		body = fmt.Sprintf(`{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"beam_current_ma":5,"tool_id":%q,"simulate_disturbance":{"offset_pct":%g,"drift_pct_per_min":0,"start_s":0}}`, tool, offsetPct)
	}
	var c created
	if code, _ := call(t, http.MethodPost, n.url+"/api/ion/runs", tok, body, &c); code != http.StatusCreated {
		t.Fatalf("POST /api/ion/runs = %d", code)
	}
	return c
}

func waitCompleted(t *testing.T, n *testNode, tok, runID string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var run struct {
			Status string `json:"status"`
		}
		call(t, http.MethodGet, n.url+"/api/ion/runs/"+runID, tok, "", &run)
		if run.Status == "completed" {
			return
		}
		if run.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("run %s status %q, want completed", runID, run.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type chartResponse struct {
	Charts []struct {
		Parameter string `json:"parameter"`
		ToolID    string `json:"tool_id"`
		Limits    *struct {
			Center, UCL, LCL, Sigma float64
			BaselineJobs            []string `json:"baseline_jobs"`
			Rules                   []string `json:"rules"`
		} `json:"limits"`
		Points []struct {
			Index int     `json:"index"`
			RunID string  `json:"run_id"`
			Value float64 `json:"value"`
			Time  string  `json:"time"`
			Rules []string
		} `json:"points"`
		Violations []struct {
			Point int    `json:"point"`
			RunID string `json:"run_id"`
			Rule  string `json:"rule"`
		} `json:"violations"`
	} `json:"charts"`
}

type rawEvents struct {
	Events []struct {
		ID       string          `json:"id"`
		Type     string          `json:"type"`
		Revision uint64          `json:"revision"`
		Position uint64          `json:"position"`
		Data     json.RawMessage `json:"data"`
		Metadata struct {
			OrgID string `json:"org_id"`
		} `json:"metadata"`
	} `json:"events"`
	NextFrom uint64 `json:"next_from"`
	HasMore  bool   `json:"has_more"`
}

// TestViewsThroughARealNode drives 30 runs through a real node, a drift
// injected from run 20, and reads the chart, the R2R inputs of the runs
// and their raw events over HTTP.
func TestViewsThroughARealNode(t *testing.T) {
	n := startNode(t)
	eng := tokenFor(t, "engineer", "org-1")
	const tool = "IMP-7"
	var runs []string
	for i := range 30 {
		off := 0.0
		if i >= 20 {
			off = 0.5 * float64(i-19) // +25 µA a run: 2.5σ of the baseline noise
		}
		c := submit(t, n, eng, tool, off)
		waitCompleted(t, n, eng, c.RunID)
		runs = append(runs, c.RunID)
	}

	// The chart: limits from the first 20 runs, violations after them,
	// each with its rule. The monitor records them just after the runs.
	url := n.url + "/api/spc/charts?parameter=mean_beam_current_ma&tool_id=" + tool + "&kind=ion"
	var ch chartResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		ch = chartResponse{}
		code, _ := call(t, http.MethodGet, url, eng, "", &ch)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", url, code)
		}
		if len(ch.Charts) == 1 && ch.Charts[0].Limits != nil && len(ch.Charts[0].Points) == 30 {
			pending, _ := n.SPC().Pending()
			if len(pending) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chart never settled: %+v", ch)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := ch.Charts[0]
	var base []float64
	for i, p := range c.Points {
		if p.RunID != runs[i] || p.Index != i {
			t.Errorf("point %d = %+v, want run %s", i, p, runs[i])
		}
		if i < 20 {
			base = append(base, p.Value)
		}
	}
	want := projections.SPCLimits("mean_beam_current_ma", base)
	if math.Abs(c.Limits.Center-want.Center) > 1e-12 || math.Abs(c.Limits.UCL-want.UCL) > 1e-12 || len(c.Limits.BaselineJobs) != 20 {
		t.Errorf("limits = %+v, want %+v from the first 20 runs", *c.Limits, want)
	}
	rules := map[string]bool{}
	for _, v := range c.Violations {
		if v.Point < 20 || v.RunID != runs[v.Point] {
			t.Errorf("violation %+v: want a point after the baseline, with its run", v)
		}
		rules[v.Rule] = true
	}
	if !rules[spc.WE1] {
		t.Errorf("rules broken = %v, want WE1 among them", rules)
	}
	t.Logf("beam current chart: centre %.4f, UCL %.4f, LCL %.4f; %d violations, rules %v",
		c.Limits.Center, c.Limits.UCL, c.Limits.LCL, len(c.Violations), rules)
	// Another organisation sees no chart; a viewer may see charts.
	var other chartResponse
	if code, _ := call(t, http.MethodGet, url, tokenFor(t, "engineer", "org-2"), "", &other); code != http.StatusOK || len(other.Charts) != 0 {
		t.Errorf("org-2 GET charts = %d, %d charts; want 200 and none", code, len(other.Charts))
	}
	if code, _ := call(t, http.MethodGet, url, tokenFor(t, "viewer", "org-1"), "", nil); code != http.StatusOK {
		t.Errorf("viewer GET charts = %d, want 200", code)
	}
	if code, _ := call(t, http.MethodGet, n.url+"/api/spc/charts?kind=cvd", eng, "", nil); code != http.StatusUnprocessableEntity {
		t.Errorf("GET charts?kind=cvd = %d, want 422", code)
	}

	// R2R: the last run started with a dose correction learnt from the
	// runs before it, and its RunStarted says so.
	last := runs[len(runs)-1]
	var evs rawEvents
	if code, _ := call(t, http.MethodGet, n.url+"/api/runs/"+last+"/events", eng, "", &evs); code != http.StatusOK {
		t.Fatalf("GET events = %d", code)
	}
	var started struct {
		R2R   map[string]float64 `json:"r2r"`
		Basis map[string]any     `json:"r2r_basis"`
	}
	for _, e := range evs.Events {
		if strings.HasPrefix(e.Type, "RunStarted.") {
			if err := json.Unmarshal(e.Data, &started); err != nil {
				t.Fatal(err)
			}
		}
	}
	scale := started.R2R["dose_setpoint_scale"]
	learnt, _ := started.Basis["learned_from"].([]any)
	if scale < 1.015 || scale > 1.025 || started.Basis["tool_id"] != tool || started.Basis["recipe_class"] != "ion/P/20-50keV" ||
		len(learnt) == 0 || learnt[len(learnt)-1] != runs[len(runs)-2] {
		t.Errorf("last run's RunStarted R2R = %v, basis %v; want a scale ≈ 1/0.98 learnt up to the run before", started.R2R, started.Basis)
	}
	var first struct {
		R2R   map[string]float64 `json:"r2r"`
		Basis map[string]any     `json:"r2r_basis"`
	}
	var evs0 rawEvents
	call(t, http.MethodGet, n.url+"/api/runs/"+runs[0]+"/events", eng, "", &evs0)
	for _, e := range evs0.Events {
		if strings.HasPrefix(e.Type, "RunStarted.") {
			_ = json.Unmarshal(e.Data, &first)
		}
	}
	if len(first.R2R) != 0 || first.Basis["updates"] != float64(0) {
		t.Errorf("first run's R2R = %v, basis %v; want none from an empty thread", first.R2R, first.Basis)
	}
	var threads struct {
		Threads []struct {
			RecipeClass string             `json:"recipe_class"`
			Updates     int                `json:"updates"`
			Recommended map[string]float64 `json:"recommended"`
		} `json:"threads"`
	}
	if code, _ := call(t, http.MethodGet, n.url+"/api/r2r/threads?tool_id="+tool, eng, "", &threads); code != http.StatusOK ||
		len(threads.Threads) != 1 || threads.Threads[0].Updates != 30 {
		t.Errorf("GET r2r/threads = %d, %+v; want one thread with 30 updates", code, threads)
	}

	// Raw events, paged, organisation-scoped, for roles that read logs.
	var page rawEvents
	code, _ := call(t, http.MethodGet, n.url+"/api/runs/"+last+"/events?from=1&limit=2", eng, "", &page)
	if code != http.StatusOK || len(page.Events) != 2 || page.Events[0].Revision != 1 || !page.HasMore || page.NextFrom != 3 {
		t.Errorf("GET events?from=1&limit=2 = %d, %+v; want revisions 1–2, more from 3", code, page)
	}
	for _, e := range evs.Events {
		if e.ID == "" || e.Position == 0 || e.Metadata.OrgID != "org-1" {
			t.Errorf("event %+v: want id, position, org-1 metadata", e)
		}
	}
	if evs.HasMore || len(evs.Events) == 0 || !strings.HasPrefix(evs.Events[0].Type, "RunRequested.") {
		t.Errorf("GET events = %+v; want the whole run from RunRequested", evs)
	}
	for _, c := range []struct {
		name, tok, path string
		want            int
	}{
		{"other_org", tokenFor(t, "admin", "org-2"), "/api/runs/" + last + "/events", http.StatusNotFound},
		{"unknown_run", eng, "/api/runs/ION-20000101-00000000/events", http.StatusNotFound},
		{"viewer", tokenFor(t, "viewer", "org-1"), "/api/runs/" + last + "/events", http.StatusForbidden},
		{"bad_limit", eng, "/api/runs/" + last + "/events?limit=0", http.StatusUnprocessableEntity},
		{"operator_charts", tokenFor(t, "operator", "org-1"), "/api/spc/charts", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, _ := call(t, http.MethodGet, n.url+c.path, c.tok, "", nil); code != c.want {
				t.Errorf("GET %s = %d, want %d", c.path, code, c.want)
			}
		})
	}
}

// TestPostThenGetSeesTheRun: 100 POST-then-immediately-GET pairs over real
// HTTP, each GET answering 200 with the run, four clients at once.
func TestPostThenGetSeesTheRun(t *testing.T) {
	n := startNode(t)
	tok := tokenFor(t, "engineer", "org-1")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if err := postThenGet(t.Context(), n.url, tok, fmt.Sprintf("T-%d", w)); err != nil {
					errs <- fmt.Errorf("pair %d of client %d: %w", i, w, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The lag gauge: store head − applied position.
	resp, err := client.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(data, []byte("\nspectra_projection_lag ")) {
		t.Errorf("GET /metrics lacks spectra_projection_lag")
	}
}

func postThenGet(ctx context.Context, base, tok, tool string) error {
	body := fmt.Sprintf(`{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"beam_current_ma":5,"tool_id":%q}`, tool)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/ion/runs", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST = %d %s", resp.StatusCode, data)
	}
	var c created
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	if resp.Header.Get(api.HeaderPosition) != fmt.Sprint(c.Position) {
		return fmt.Errorf("POST %s = %q, want the position %d", api.HeaderPosition, resp.Header.Get(api.HeaderPosition), c.Position)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/ion/runs/"+c.RunID, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = client.Do(req)
	if err != nil {
		return err
	}
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var run struct {
		RunID string `json:"run_id"`
	}
	_ = json.Unmarshal(data, &run)
	if resp.StatusCode != http.StatusOK || run.RunID != c.RunID {
		return fmt.Errorf("GET right after POST = %d %s, want 200 with run %s", resp.StatusCode, bytes.TrimSpace(data), c.RunID)
	}
	if p := resp.Header.Get(api.HeaderPosition); p == "" {
		return fmt.Errorf("GET has no %s", api.HeaderPosition)
	}
	return nil
}
