package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/node"
)

// The API's /openapi.json tells the truth: a real node answers every
// route, successes and refusals, with a status the document lists for
// that route and a body its schema accepts (kin-openapi validates both).
func TestOpenAPIMatchesResponses(t *testing.T) {
	secret := []byte("openapi-test-secret-0123456789abcdef")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), HTTPAddr: addr, TimeScale: 0, Node: "openapi",
		JWTSecret: secret, AllowFaultInjection: true, QueueLimit: 4})
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(n.Close)
	base := "http://" + addr
	v := &apiValidator{t: t, base: base, seen: map[string][]int{}}
	waitReady(t, base)

	// The document itself: valid OpenAPI, and the router the checks use.
	_, body := v.raw(http.MethodGet, "/openapi.json", "", nil)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(body)
	if err != nil {
		t.Fatalf("load /openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("/openapi.json is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	if v.router, err = gorillamux.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/javascript", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/css", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("image/svg+xml", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.FileBodyDecoder)

	admin := issue(t, secret, "admin", "org-1")
	viewer := issue(t, secret, "viewer", "org-1")
	ion, err := os.ReadFile(filepath.Join("..", "examples", "ion-seed.json"))
	if err != nil {
		t.Fatal(err)
	}
	rtp, err := os.ReadFile(filepath.Join("..", "examples", "rtp-seed.json"))
	if err != nil {
		t.Fatal(err)
	}

	// Operations and the dashboard.
	v.check(http.MethodGet, "/healthz", "", nil, 200)
	v.check(http.MethodGet, "/readyz", "", nil, 200)
	v.check(http.MethodGet, "/metrics", "", nil, 200)
	v.check(http.MethodGet, "/openapi.json", "", nil, 200)
	v.check(http.MethodGet, "/", "", nil, 200)
	v.check(http.MethodGet, "/dashboard/app.js", "", nil, 200)
	v.check(http.MethodGet, "/dashboard/nope.js", "", nil, 404)

	// Runs: created, completed, listed, read with their results.
	var ionRun, rtpRun struct {
		RunID string `json:"run_id"`
		JobID string `json:"job_id"`
	}
	v.decode(v.check(http.MethodPost, "/api/ion/runs", admin, ion, 201, "Idempotency-Key", "openapi-ion-1"), &ionRun)
	v.decode(v.check(http.MethodPost, "/api/rtp/runs", admin, rtp, 201, "Idempotency-Key", "openapi-rtp-1"), &rtpRun)
	// A repeated key answers the run it names: 200, documented too.
	v.check(http.MethodPost, "/api/ion/runs", admin, ion, 200, "Idempotency-Key", "openapi-ion-1")
	v.check(http.MethodPost, "/api/rtp/runs", admin, rtp, 200, "Idempotency-Key", "openapi-rtp-1")
	waitStatus(t, v, "/api/ion/runs/"+ionRun.RunID, admin, "completed")
	waitStatus(t, v, "/api/rtp/runs/"+rtpRun.RunID, admin, "completed")
	v.check(http.MethodGet, "/api/ion/runs", admin, nil, 200)
	v.check(http.MethodGet, "/api/rtp/runs?status=completed&limit=5", admin, nil, 200)
	v.check(http.MethodGet, "/api/ion/runs/"+ionRun.RunID, admin, nil, 200)
	v.check(http.MethodGet, "/api/rtp/runs/"+rtpRun.RunID, admin, nil, 200)
	v.check(http.MethodGet, "/api/jobs", admin, nil, 200)
	v.check(http.MethodGet, "/api/runs?kind=ion&limit=5", admin, nil, 200)
	v.check(http.MethodGet, "/api/jobs/"+ionRun.JobID, admin, nil, 200)
	v.check(http.MethodGet, "/api/jobs/"+ionRun.JobID+"/logs", admin, nil, 200)
	v.check(http.MethodGet, "/api/jobs/"+ionRun.JobID+"/logs", admin, nil, 200, "Accept", "application/x-ndjson")
	v.check(http.MethodGet, "/api/jobs/"+ionRun.JobID+"/artifacts/dose_map.json", admin, nil, 200)
	v.check(http.MethodGet, "/api/jobs/"+rtpRun.JobID+"/artifacts/temperature_profile.svg", admin, nil, 200)
	v.check(http.MethodGet, "/api/runs/"+ionRun.RunID+"/events?limit=5", admin, nil, 200)
	v.check(http.MethodGet, "/api/runs/"+ionRun.RunID+"/r2r", admin, nil, 200)
	v.check(http.MethodGet, "/api/spc/charts", admin, nil, 200, 404)
	v.check(http.MethodGet, "/api/r2r/threads", admin, nil, 200)
	v.check(http.MethodGet, "/api/audit", admin, nil, 200)
	v.check(http.MethodGet, "/api/runs/"+ionRun.RunID+"/verify", admin, nil, 200)
	v.check(http.MethodGet, "/api/runs/"+rtpRun.RunID+"/records", admin, nil, 200)
	v.check(http.MethodGet, "/api/tools/ion/timeline", admin, nil, 200)
	v.check(http.MethodPost, "/api/r2r/what-if", admin, []byte(`{"setting":{"off":true}}`), 200)
	v.check(http.MethodPost, "/api/tools/ion/maintenance", admin,
		[]byte(`{"from":"2026-12-03T08:00:00Z","until":"2026-12-03T09:00:00Z","reason":"PM"}`), 201)
	v.check(http.MethodPost, "/api/tools/ion/maintenance", admin, []byte(`{"from":"2026-12-03T08:00:00Z","reason":"PM"}`), 422)

	// Commands: a failed run retried (202); commands the state refuses (409).
	failing := bytes.Replace(ion, []byte(`{`), []byte(`{"simulate_fault": {"kind": "permanent", "at_progress_pct": 30},`), 1)
	var failed struct {
		RunID string `json:"run_id"`
		JobID string `json:"job_id"`
	}
	v.decode(v.check(http.MethodPost, "/api/ion/runs", admin, failing, 201), &failed)
	waitStatus(t, v, "/api/ion/runs/"+failed.RunID, admin, "failed")
	v.check(http.MethodPost, "/api/jobs/"+failed.JobID+"/retry", admin, nil, 202)
	// Commands a run's state allows (202): long runs paused, resumed and
	// cancelled while they run.
	long := []byte(`{"species":"P","energy_kev":40,"dose_atoms_cm2":1e16,"beam_current_ma":0.1,"wafer_diameter_mm":300}`)
	longRTP := []byte(`{"segments":[` + strings.Repeat(`{"target_temp_c":900,"duration_s":300},`, 9) +
		`{"target_temp_c":400,"duration_s":300}]}`)
	var a, b, c struct {
		RunID string `json:"run_id"`
		JobID string `json:"job_id"`
	}
	v.decode(v.check(http.MethodPost, "/api/ion/runs", admin, long, 201), &a)
	v.decode(v.check(http.MethodPost, "/api/ion/runs", admin, long, 201), &b)
	v.decode(v.check(http.MethodPost, "/api/rtp/runs", admin, longRTP, 201), &c)
	v.check(http.MethodPost, "/api/jobs/"+b.JobID+"/cancel", admin, []byte(`{"reason":"not needed"}`), 202)
	v.check(http.MethodDelete, "/api/rtp/runs/"+c.RunID, admin, nil, 202)
	waitStatus(t, v, "/api/ion/runs/"+a.RunID, admin, "running")
	v.check(http.MethodPost, "/api/jobs/"+a.JobID+"/pause", admin, nil, 202)
	v.check(http.MethodPost, "/api/jobs/"+a.JobID+"/resume", admin, nil, 202)
	v.check(http.MethodDelete, "/api/ion/runs/"+a.RunID, admin, nil, 202)
	v.check(http.MethodPost, "/api/jobs/"+ionRun.JobID+"/pause", admin, nil, 409)
	v.check(http.MethodPost, "/api/jobs/"+ionRun.JobID+"/resume", admin, nil, 409)
	v.check(http.MethodPost, "/api/jobs/"+ionRun.JobID+"/cancel", admin, []byte(`{"reason":"late"}`), 409)
	v.check(http.MethodDelete, "/api/ion/runs/"+ionRun.RunID, admin, nil, 409)
	v.check(http.MethodDelete, "/api/rtp/runs/"+rtpRun.RunID, admin, nil, 409)

	// Process tools.
	v.check(http.MethodPost, "/api/ion/simulate/dose_profile", admin,
		[]byte(`{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"tilt_deg":7}`), 200)
	v.check(http.MethodPost, "/api/rtp/tune/controller", admin,
		[]byte(`{"controller_type":"pid","optimization_target":"minimize_overshoot","recipe":`+string(rtp)+`}`), 200)

	// Credentials: an API key traded for tokens, refreshed, revoked.
	var key struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	v.decode(v.check(http.MethodPost, "/api/auth/api-keys", admin, []byte(`{"name":"ci","role":"operator"}`), 201), &key)
	v.check(http.MethodGet, "/api/auth/api-keys", admin, nil, 200)
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	v.decode(v.check(http.MethodPost, "/api/auth/token", "", []byte(`{"api_key":"`+key.Key+`"}`), 200), &tok)
	v.check(http.MethodPost, "/api/auth/refresh", "", []byte(`{"refresh_token":"`+tok.RefreshToken+`"}`), 200)
	v.check(http.MethodDelete, "/api/auth/refresh", "", nil, 204) // a browser's sign-out (here without its cookie)
	v.check(http.MethodDelete, "/api/auth/api-keys/"+key.ID, admin, nil, 200)
	v.check(http.MethodPost, "/api/auth/token", "", []byte(`{"api_key":"`+key.Key+`"}`), 401)

	// Who am I, and an ion run's depth profile.
	v.check(http.MethodGet, "/api/auth/me", viewer, nil, 200)
	v.check(http.MethodGet, "/api/ion/runs/"+ionRun.RunID+"/profile", admin, nil, 200)

	// Recipes (an engineer writes, an admin approves), lots, schedules.
	eng := issue(t, secret, "engineer", "org-1")
	library := `{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"tilt_deg":7,"beam_current_ma":5}`
	v.check(http.MethodPost, "/api/recipes", eng, []byte(`{"name":"p_40kev","kind":"ion","recipe":`+library+`}`), 201)
	v.check(http.MethodGet, "/api/recipes", eng, nil, 200)
	v.check(http.MethodGet, "/api/recipes/p_40kev", eng, nil, 200)
	v.check(http.MethodGet, "/api/recipes/p_40kev/versions/1", eng, nil, 200)
	v.check(http.MethodPost, "/api/recipes/p_40kev/versions/1/approve", admin, nil, 200)
	v.check(http.MethodGet, "/api/recipes/p_40kev/diff?from=1&to=1", eng, nil, 200)
	var lot struct {
		Lot struct {
			LotID string `json:"lot_id"`
		} `json:"lot"`
	}
	v.decode(v.check(http.MethodPost, "/api/lots", admin, []byte(`{"recipe":{"name":"p_40kev"},"wafer_count":2}`), 201), &lot)
	v.check(http.MethodPost, "/api/lots", admin, []byte(`{"recipe":{"name":"p_40kev"},"wafer_count":1}`), 201, "Idempotency-Key", "openapi-lot-1")
	v.check(http.MethodPost, "/api/lots", admin, []byte(`{"recipe":{"name":"p_40kev"},"wafer_count":1}`), 200, "Idempotency-Key", "openapi-lot-1")
	v.check(http.MethodGet, "/api/lots", admin, nil, 200)
	v.check(http.MethodGet, "/api/lots/"+lot.Lot.LotID, admin, nil, 200)
	v.check(http.MethodPost, "/api/lots/"+lot.Lot.LotID+"/retry", admin, []byte(`{"wafers":["W01"]}`), 202)
	for _, verb := range []string{"pause", "resume", "cancel"} {
		v.check(http.MethodPost, "/api/lots/"+lot.Lot.LotID+"/"+verb, admin, nil, 202, 409)
	}
	var sched struct {
		ScheduleID string `json:"schedule_id"`
	}
	v.decode(v.check(http.MethodPost, "/api/schedules", eng, []byte(`{"recipe":{"name":"p_40kev"},"kind":"ion","cron":"@hourly"}`), 201), &sched)
	v.check(http.MethodGet, "/api/schedules", eng, nil, 200)
	v.check(http.MethodGet, "/api/schedules/"+sched.ScheduleID, eng, nil, 200)
	v.check(http.MethodPost, "/api/schedules/"+sched.ScheduleID+"/pause", eng, nil, 202)
	v.check(http.MethodPost, "/api/schedules/"+sched.ScheduleID+"/resume", eng, nil, 202)

	// Refusals, each with the Error body.
	v.check(http.MethodGet, "/api/jobs", "", nil, 401)
	v.check(http.MethodPost, "/api/ion/runs", viewer, ion, 403)
	v.check(http.MethodGet, "/api/jobs/job-000000000000", admin, nil, 404)
	v.check(http.MethodGet, "/api/ion/runs/ION-20260101-00000000", admin, nil, 404)
	v.check(http.MethodPost, "/api/ion/runs", admin, []byte(`{"species":"Xe"}`), 422)
	v.check(http.MethodPost, "/api/rtp/runs", admin, []byte(`{`), 400, 422)
	v.check(http.MethodGet, "/api/jobs?status=bogus", admin, nil, 422)

	// Streams upgrade to WebSocket.
	v.upgrade("/api/ion/stream/"+ionRun.RunID, admin)
	v.upgrade("/api/rtp/stream/"+rtpRun.RunID, admin)
	v.upgrade("/api/stream", admin)

	// Every route of the table was asked, and every success the document
	// lists for it was seen: the document lists what routes answer, no
	// more and no less.
	for _, r := range n.API().Routes() {
		key := r.Method + " " + r.Path
		if _, ok := v.seen[key]; !ok {
			t.Errorf("%s: no request in this test; add one", key)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + strings.NewReplacer("{", ":", "}", "").Replace(path)
			for code := range op.Responses.Map() {
				status, err := strconv.Atoi(code)
				if err == nil && status < 300 && !slices.Contains(v.seen[key], status) {
					t.Errorf("%s: the document lists success %d, never answered here (seen %v)", key, status, v.seen[key])
				}
			}
		}
	}
}

type apiValidator struct {
	t      *testing.T
	base   string
	router routers.Router
	seen   map[string][]int // route → statuses seen
}

func (v *apiValidator) raw(method, path, tok string, body []byte, hdr ...string) (*http.Response, []byte) {
	v.t.Helper()
	req, err := http.NewRequestWithContext(v.t.Context(), method, v.base+path, bytes.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		v.t.Fatal(err)
	}
	resp.Request = req
	return resp, data
}

// check sends a request, wants one of the statuses (an int; strings
// after the statuses are header name/value pairs), and validates the
// response against the document.
func (v *apiValidator) check(method, path, tok string, body []byte, want ...any) []byte {
	v.t.Helper()
	var statuses []int
	var hdr []string
	for _, w := range want {
		switch w := w.(type) {
		case int:
			statuses = append(statuses, w)
		case string:
			hdr = append(hdr, w)
		}
	}
	resp, data := v.raw(method, path, tok, body, hdr...)
	if !slices.Contains(statuses, resp.StatusCode) {
		v.t.Errorf("%s %s = %d, want %v: %s", method, path, resp.StatusCode, statuses, truncate(data))
	}
	v.validate(resp, data)
	return data
}

func (v *apiValidator) validate(resp *http.Response, data []byte) {
	v.t.Helper()
	req := resp.Request
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		v.t.Errorf("%s %s: not in the document: %v", req.Method, req.URL.Path, err)
		return
	}
	key := route.Method + " " + strings.NewReplacer("{", ":", "}", "").Replace(route.Path)
	v.seen[key] = append(v.seen[key], resp.StatusCode)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(data)),
		Options: in.Options})
	if err != nil {
		v.t.Errorf("%s %s → %d does not match the document: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, truncate(data))
	}
}

// upgrade opens a WebSocket stream and checks the 101 is documented.
func (v *apiValidator) upgrade(path, tok string) {
	v.t.Helper()
	u := "ws" + strings.TrimPrefix(v.base, "http") + path
	conn, resp, err := websocket.DefaultDialer.DialContext(v.t.Context(), u, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		v.t.Errorf("dial %s: %v", path, err)
		return
	}
	conn.Close()
	req, _ := http.NewRequest(http.MethodGet, v.base+path, nil)
	resp.Request = req
	v.validate(resp, nil)
}

func (v *apiValidator) decode(data []byte, out any) {
	v.t.Helper()
	if err := json.Unmarshal(data, out); err != nil {
		v.t.Fatalf("decode %s: %v", truncate(data), err)
	}
}

func truncate(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

func issue(t *testing.T, secret []byte, role, org string) string {
	t.Helper()
	tok, err := api.IssueToken(secret, role+"-user", role+"@example.com", org, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("node not ready in 30 s")
}

func waitStatus(t *testing.T, v *apiValidator, path, tok, status string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, data := v.raw(http.MethodGet, path, tok, nil)
		var run struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(data, &run)
		if run.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: status %q, want %q", path, run.Status, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ = fmt.Sprint
