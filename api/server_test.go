package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/projections"
)

func TestRequestID(t *testing.T) {
	h := newHarness(t)
	t.Run("echoed", func(t *testing.T) {
		res := h.do(t, http.MethodGet, "/healthz", "", "", "X-Request-ID", "abc-123")
		if got := res.Header.Get("X-Request-ID"); got != "abc-123" {
			t.Errorf("X-Request-ID = %q, want abc-123", got)
		}
	})
	t.Run("in_error_body", func(t *testing.T) {
		res := h.do(t, http.MethodGet, "/api/jobs", "", "", "X-Request-ID", "abc-456")
		if e := res.Err(t); e.RequestID != "abc-456" || res.Header.Get("X-Request-ID") != "abc-456" {
			t.Errorf("request_id = %q, header %q, want abc-456", e.RequestID, res.Header.Get("X-Request-ID"))
		}
	})
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for name, sent := range map[string]string{"generated": "", "unsafe_replaced": "bad id\twith spaces",
		"too_long_replaced": strings.Repeat("a", 200)} {
		t.Run(name, func(t *testing.T) {
			var hdr []string
			if sent != "" {
				hdr = []string{"X-Request-ID", sent}
			}
			res := h.do(t, http.MethodGet, "/healthz", "", "", hdr...)
			if got := res.Header.Get("X-Request-ID"); !uuidRE.MatchString(got) {
				t.Errorf("X-Request-ID = %q, want a generated UUID", got)
			}
		})
	}
	t.Run("access_log", func(t *testing.T) {
		h.do(t, http.MethodGet, "/api/ion/runs", token(t, RoleViewer, "org-1"), "", "X-Request-ID", "log-me")
		logs := h.logs.String()
		if !strings.Contains(logs, `"request_id":"log-me"`) || !strings.Contains(logs, `"route":"/api/ion/runs"`) ||
			!strings.Contains(logs, `"user_id":"u-viewer"`) {
			t.Errorf("access log lacks request id, route or principal: %s", logs)
		}
		if strings.Contains(logs, "Bearer") || strings.Contains(logs, string(testSecret)) {
			t.Errorf("access log leaks credentials: %s", logs)
		}
	})
}

func TestUnknownRoute(t *testing.T) {
	h := newHarness(t)
	for _, tok := range []string{"", token(t, RoleAdmin, "org-1")} {
		for _, path := range []string{"/nope", "/api/nope", "/api/ion/runs/x/y"} {
			res := h.do(t, http.MethodGet, path, tok, "")
			if res.Status != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", path, res.Status)
				continue
			}
			if e := res.Err(t); e.Code != CodeNotFound {
				t.Errorf("GET %s code = %q, want not_found", path, e.Code)
			}
		}
	}
	res := h.do(t, http.MethodPut, "/api/ion/runs", token(t, RoleAdmin, "org-1"), "{}")
	if res.Status != http.StatusMethodNotAllowed && res.Status != http.StatusNotFound {
		t.Errorf("PUT /api/ion/runs = %d, want 405 or 404", res.Status)
	}
	res.Err(t)
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	h.do(t, http.MethodGet, "/api/ion/runs/ION-X", token(t, RoleViewer, "org-1"), "")
	h.do(t, http.MethodGet, "/does-not-exist", "", "")
	res := h.do(t, http.MethodGet, "/metrics", "", "")
	if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %q", res.Status, res.Header.Get("Content-Type"))
	}
	body := string(res.Body)
	for _, want := range []string{
		`spectra_http_requests_total{method="GET",route="/api/ion/runs/:run_id",status="404"} 1`,
		`spectra_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`spectra_http_request_duration_seconds_bucket{method="GET",route="/api/ion/runs/:run_id",status="404",le="+Inf"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "ION-X") || strings.Contains(body, "does-not-exist") {
		t.Error("/metrics labels carry raw paths")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	ready := errors.New("projections catching up")
	h := newHarness(t, func(_ *Config, d *Deps) {
		d.Ready = func(context.Context) error { return ready }
	})
	if res := h.do(t, http.MethodGet, "/healthz", "", ""); res.Status != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", res.Status)
	}
	res := h.do(t, http.MethodGet, "/readyz", "", "")
	if e := res.Err(t); res.Status != http.StatusServiceUnavailable || e.Code != CodeUnavailable {
		t.Errorf("GET /readyz when not ready = %d %+v, want 503 unavailable", res.Status, e)
	}
	ready = nil
	if res := h.do(t, http.MethodGet, "/readyz", "", ""); res.Status != http.StatusOK {
		t.Errorf("GET /readyz when ready = %d, want 200", res.Status)
	}
}

func TestReadYourWrites(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Deps) { c.ReadYourWritesTimeout = 50 * time.Millisecond })
	h.b.addRun(projections.Run{RunID: "ION-20260101-00000001", JobID: "job-000000000001", OrgID: "org-1", Kind: "ion", Status: "running"})
	tok := token(t, RoleViewer, "org-1")

	res := h.do(t, http.MethodGet, "/api/ion/runs/ION-20260101-00000001", tok, "")
	if res.Header.Get(HeaderPosition) != "1" || res.Header.Get(HeaderStale) != "" {
		t.Errorf("GET headers %s = %q, %s = %q; want 1 and none", HeaderPosition, res.Header.Get(HeaderPosition),
			HeaderStale, res.Header.Get(HeaderStale))
	}
	if res := h.do(t, http.MethodGet, "/api/ion/runs/ION-20260101-00000001", tok, "", HeaderMinPosition, "1"); res.Header.Get(HeaderStale) != "" {
		t.Errorf("GET at a reached position is marked stale")
	}

	h.b.mu.Lock()
	h.b.stuck = true
	h.b.mu.Unlock()
	start := time.Now()
	res = h.do(t, http.MethodGet, "/api/ion/runs/ION-20260101-00000001", tok, "", HeaderMinPosition, "99")
	if res.Status != http.StatusOK || res.Header.Get(HeaderStale) != "true" {
		t.Errorf("GET past the read models = %d, stale %q; want 200 and stale true", res.Status, res.Header.Get(HeaderStale))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("GET waited %v, want about the 50 ms timeout", d)
	}

	// A command whose position the read models do not reach in time still
	// answers, marked stale.
	res = h.do(t, http.MethodPost, "/api/ion/runs", token(t, RoleEngineer, "org-1"), ionRecipe)
	if res.Status != http.StatusCreated || res.Header.Get(HeaderStale) != "true" {
		t.Errorf("POST with stuck read models = %d, stale %q; want 201 and stale true", res.Status, res.Header.Get(HeaderStale))
	}

	res = h.do(t, http.MethodGet, "/api/ion/runs/ION-20260101-00000001", tok, "", HeaderMinPosition, "soon")
	if e := res.Err(t); res.Status != http.StatusUnprocessableEntity || e.Fields[0].Field != HeaderMinPosition {
		t.Errorf("GET with a bad %s = %d %+v, want 422", HeaderMinPosition, res.Status, e)
	}
}

func TestBodyLimit(t *testing.T) {
	// Over HTTP: Fiber's app.Test reports the server's refusal as an error.
	h := newHarness(t, func(c *Config, _ *Deps) { c.BodyLimit = 64 })
	url := serve(t, h)
	body := `{"comments":"` + strings.Repeat("x", 200) + `"}`
	req, _ := http.NewRequest(http.MethodPost, url+"/api/ion/runs", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token(t, RoleEngineer, "org-1"))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST over the body limit = %d, want 413; body %s", res.StatusCode, b)
	}
	if e := (response{Status: res.StatusCode, Body: b}).Err(t); e.Code != CodePayloadTooLarge {
		t.Errorf("code = %q, want payload_too_large", e.Code)
	}
}

// serve serves h on a loopback port until the test ends and returns its URL.
func serve(t *testing.T, h *harness) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
	})
	return "http://" + ln.Addr().String()
}

func TestServeAndShutdown(t *testing.T) {
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ln) }()

	url := "http://" + ln.Addr().String()
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), "ok") {
		t.Errorf("GET /healthz over loopback = %d %s", res.StatusCode, b)
	}

	req, _ := http.NewRequest(http.MethodGet, url+"/api/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, RoleViewer, "org-1"))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/jobs: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET /api/jobs over loopback = %d", res.StatusCode)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Shutdown = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
}
