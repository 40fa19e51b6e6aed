package bidi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/internal/bidi"
)

// firefox returns Firefox's path. Where it is missing the test skips,
// unless SPECTRA_REQUIRE_BROWSERS is set (CI sets it: there a missing
// browser is a failure, not a skip).
func firefox(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	p := bidi.Firefox()
	if p == "" {
		if os.Getenv("SPECTRA_REQUIRE_BROWSERS") != "" {
			t.Fatal("no Firefox on this machine, and SPECTRA_REQUIRE_BROWSERS is set (.ci/run installs firefox-esr)")
		}
		t.Skip("BROWSER TEST SKIPPED: no Firefox on this machine (`make browser` or .ci/run installs Debian's firefox-esr)")
	}
	return p
}

// The driver against a real headless Firefox: a page served over HTTP is
// navigated to, evaluated (values, promises, exceptions), its console
// errors and uncaught exceptions arrive as log entries, a refused command
// is an *Error, and a screenshot is a PNG of the viewport's width.
func TestFirefoxOverBiDi(t *testing.T) {
	path := firefox(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>bidi</title><h1 id="x">hello</h1>
<script>console.error("boom", 42); setTimeout(() => { throw new Error("late failure"); }, 10);</script>`)
	}))
	defer srv.Close()

	// Starting takes 2-3 s on a quiet machine, 20 s or more on a loaded one.
	start, cancelStart := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancelStart()
	b, err := bidi.LaunchFirefox(start, path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var logs []bidi.LogEntry
	b.OnLog(func(e bidi.LogEntry) { mu.Lock(); logs = append(logs, e); mu.Unlock() })

	tab, err := b.NewTab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.SetViewport(ctx, 800, 600); err != nil {
		t.Fatal(err)
	}
	if err := tab.Navigate(ctx, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Title string
		Text  string
		N     int
	}
	if err := tab.Eval(ctx, `({ Title: document.title, Text: document.getElementById("x").textContent, N: [1, 2, 3].length })`, &got); err != nil {
		t.Fatal(err)
	}
	if got.Title != "bidi" || got.Text != "hello" || got.N != 3 {
		t.Errorf("Eval = %+v", got)
	}
	var later string
	if err := tab.Eval(ctx, `new Promise((ok) => setTimeout(() => ok("awaited"), 20))`, &later); err != nil || later != "awaited" {
		t.Errorf("Eval of a promise = %q, %v", later, err)
	}
	if err := tab.Eval(ctx, `(() => { throw new Error("thrown here"); })()`, nil); err == nil || !strings.Contains(err.Error(), "thrown here") {
		t.Errorf("Eval of a throw = %v, want its message", err)
	}
	if err := tab.Wait(ctx, `document.readyState === "complete"`, 5*time.Second); err != nil {
		t.Error(err)
	}
	if err := tab.Wait(ctx, `false`, 300*time.Millisecond); err == nil {
		t.Error("Wait for false returned nil")
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		var console, thrown bool
		for _, e := range logs {
			console = console || (e.Type == "console" && e.Level == "error" && strings.Contains(e.Text, "boom 42") && e.Source.Context == tab.Context)
			thrown = thrown || (e.Type == "javascript" && e.Level == "error" && strings.Contains(e.Text, "late failure"))
		}
		mu.Unlock()
		if console && thrown {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log entries %+v: want console.error(\"boom\", 42) and the uncaught error", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	shot, err := tab.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() != 800 {
		t.Errorf("screenshot: %v, %v; want an 800 px wide PNG", img.Bounds(), err)
	}

	var refused *bidi.Error
	if err := b.Call(ctx, "browsingContext.navigate", map[string]any{"context": "no-such-context", "url": "about:blank"}, nil); !errors.As(err, &refused) || refused.Code == "" {
		t.Errorf("navigate in an unknown context = %v, want a BiDi error", err)
	}
	if err := tab.Close(ctx); err != nil {
		t.Error(err)
	}
}
