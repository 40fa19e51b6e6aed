package node_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/spectra-fab/spectra/node"
)

// Every metric the Grafana dashboard (deploy/grafana/spectra.json) queries
// is one a node serves at /metrics once it has done some work.
func TestGrafanaDashboardQueriesServedMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "spectra.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/spectra.json: %v", err)
	}
	queried := map[string]string{} // metric → panel
	name := regexp.MustCompile(`\b(spectra|go|process)_[a-z0-9_]+\b`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				queried[m] = p.Title
			}
		}
	}
	if len(queried) < 10 {
		t.Fatalf("the dashboard queries %d metrics; parsed it wrong?", len(queried))
	}

	// A node that ran a run and served a WebSocket stream.
	secret := []byte("grafana-test-secret-0123456789abcdef")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n, err := node.Start(t.Context(), node.Config{DataDir: t.TempDir(), HTTPAddr: addr, TimeScale: 0,
		JWTSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	base := "http://" + addr
	waitReady(t, base)
	v := &apiValidator{t: t, base: base, seen: map[string][]int{}}
	admin := issue(t, secret, "admin", "org-1")
	recipe, err := os.ReadFile(filepath.Join("..", "examples", "ion-seed.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, body := v.raw(http.MethodPost, "/api/ion/runs", admin, recipe)
	var run struct {
		RunID string `json:"run_id"`
	}
	v.decode(body, &run)
	waitStatus(t, v, "/api/ion/runs/"+run.RunID, admin, "completed")
	conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), "ws://"+addr+"/api/stream", http.Header{"Authorization": {"Bearer " + admin}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	v.raw(http.MethodGet, "/api/jobs", "", nil) // a denial

	// The server notes a stream's close once it has seen it: scrape until
	// every queried metric is there, or 10 s have passed.
	var served map[string]bool
	for deadline := time.Now().Add(10 * time.Second); ; {
		served = scrape(t, base)
		missing := false
		for m := range queried {
			missing = missing || !served[m]
		}
		if !missing || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for m, panel := range queried {
		if !served[m] {
			t.Errorf("panel %q queries %s, which the node does not serve", panel, m)
		}
	}
}

// scrape returns the metric names /metrics serves (a histogram's series
// included).
func scrape(t *testing.T, base string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	served := map[string]bool{}
	for _, line := range strings.Split(string(text), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[1] == "TYPE" {
			served[f[2]] = true
			if f[3] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					served[f[2]+s] = true
				}
			}
		}
	}
	return served
}
