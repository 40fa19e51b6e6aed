package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/internal/bidi"
)

// firefoxRuns is what the Firefox checks read, made by the shared setup.
type firefoxRuns struct {
	eng, ionDone, lotDone string
	minRuns               int
}

// firefoxTab is one tab of a headless Firefox driven over WebDriver BiDi,
// collecting its console errors and uncaught exceptions.
type firefoxTab struct {
	t    *testing.T
	tab  *bidi.Tab
	mu   sync.Mutex
	errs []string
}

func (f *firefoxTab) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

func (f *firefoxTab) fail(err error) {
	f.t.Helper()
	ctx, cancel := f.ctx()
	defer cancel()
	var page string
	_ = f.tab.Eval(ctx, `(document.getElementById("view")?.innerText || "").slice(0, 3000)`, &page)
	f.t.Fatalf("firefox: %v\npage:\n%s\nconsole: %v", err, page, f.errors())
}

func (f *firefoxTab) eval(js string, out any) {
	f.t.Helper()
	ctx, cancel := f.ctx()
	defer cancel()
	if err := f.tab.Eval(ctx, js, out); err != nil {
		f.fail(err)
	}
}

func (f *firefoxTab) wait(js string, within time.Duration) {
	f.t.Helper()
	ctx, cancel := f.ctx()
	defer cancel()
	if err := f.tab.Wait(ctx, js, within); err != nil {
		f.fail(err)
	}
}

func (f *firefoxTab) str(js string) string {
	f.t.Helper()
	var s string
	f.eval(js, &s)
	return s
}

func (f *firefoxTab) errors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.errs...)
}

func (f *firefoxTab) shot(dir, name string) {
	f.t.Helper()
	ctx, cancel := f.ctx()
	defer cancel()
	time.Sleep(300 * time.Millisecond)
	png, err := f.tab.Screenshot(ctx)
	if err != nil {
		f.fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// testDashboardInFirefox runs the dashboard's key checks in headless
// Firefox against the shared server: sign-in with an API key (its
// refresh token in an HttpOnly cookie, refreshed before the 3 s access
// token expires), one page of the list, a finished ion run's charts, dose
// map and depth profile, a lot, and no console error anywhere.
func testDashboardInFirefox(t *testing.T, s *server, shots string, runs firefoxRuns) {
	path := bidi.Firefox()
	if path == "" {
		noBrowser(t, "Firefox", "firefox-esr")
	}
	// Starting takes 2-3 s on a quiet machine, 20 s or more on a loaded one.
	start, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	b, err := bidi.LaunchFirefox(start, path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	tab, err := b.NewTab(start)
	if err != nil {
		t.Fatal(err)
	}
	f := &firefoxTab{t: t, tab: tab}
	b.OnLog(func(e bidi.LogEntry) {
		if e.Level == "error" && e.Source.Context == tab.Context {
			f.mu.Lock()
			f.errs = append(f.errs, e.Type+": "+e.Text)
			f.mu.Unlock()
		}
	})
	if err := tab.SetViewport(start, 1440, 1000); err != nil {
		t.Fatal(err)
	}

	r := s.do(t, "POST", "/api/auth/api-keys", token(t, "admin", "org-1"), map[string]any{"name": "firefox", "role": "operator"})
	if r.status != 201 {
		t.Fatalf("POST /api/auth/api-keys = %d %s", r.status, r.body)
	}
	key := r.json(t)["key"].(string)
	if err := tab.Navigate(start, "http://"+s.addr+"/"); err != nil {
		t.Fatal(err)
	}
	f.wait(`document.getElementById("secret")`, 30*time.Second)
	f.eval(`(() => { document.getElementById("secret").value = `+jsString(key)+`;
		document.querySelector("#sign-in button[type=submit]").click(); return true; })()`, nil)
	f.wait(`document.getElementById("role")`, 30*time.Second)
	if role := f.str(`document.getElementById("role").textContent`); !strings.Contains(role, "operator") {
		t.Errorf("signed in as %q, want the key's operator role", role)
	}

	f.wait(`Number(document.getElementById("runs-count")?.dataset.total) >= `+strconv.Itoa(runs.minRuns)+
		` && document.querySelectorAll("#runs tbody tr").length === 50`, 60*time.Second)
	var reads int
	f.eval(listReads, &reads)
	if reads != 1 {
		t.Errorf("signing in read the runs list %d times, want one page", reads)
	}
	firstToken := f.str(`JSON.parse(sessionStorage.getItem("spectra.session")).token`)
	f.shot(shots, "firefox-runs")

	f.eval(`location.hash = "#/run/`+runs.ionDone+`"`, nil)
	f.wait(`document.getElementById("dose-map")?.dataset.rendered === "true"`, 30*time.Second)
	f.wait(`Number(document.getElementById("depth-profile")?.dataset.points) > 50`, 30*time.Second)
	for _, id := range []string{"chart-beam", "chart-dose", "chart-pressure", "chart-temp"} {
		f.wait(`Number(document.getElementById("`+id+`")?.dataset.points) > 0`, 10*time.Second)
	}
	f.wait(`document.querySelector('#results-table [data-field="final_dose_atoms_cm2"]')?.textContent.includes("cm⁻²")`, 10*time.Second)
	f.shot(shots, "firefox-run-ion-completed")

	f.eval(`location.hash = "#/lot/`+runs.lotDone+`"`, nil)
	f.wait(`document.querySelectorAll("#cassette .slot[data-status=completed]").length === 4 && document.getElementById("lot-results-table")`, 30*time.Second)

	// By now the first access token (3 s) has been refreshed through the
	// cookie, which no script can read.
	f.wait(`JSON.parse(sessionStorage.getItem("spectra.session")).token !== `+jsString(firstToken), 15*time.Second)
	if readable := f.str(readableByPage); strings.Contains(readable, "sprt_") {
		t.Errorf("a refresh token is readable by the page: %s", readable)
	}
	if f.str(`document.getElementById("conn").textContent`) != "live" {
		t.Errorf("the organisation's stream is not live")
	}
	for _, e := range f.errors() {
		t.Errorf("console: %s", e)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
