package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVerifyAfterKill9: runs of every shape (plain, paused and resumed,
// cancelled mid-run, retried after a transient fault), the server killed
// with SIGKILL while they run, restarted on the same data: each run
// re-derives identically from its log, with an intact, sealed chain, over
// the API, through `spectra verify`, and offline from its exported
// records.
func TestVerifyAfterKill9(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--time-scale", "20", "--queue-limit", "10", "--allow-fault-injection", "--retry-base", "2s"}
	s := startServer(t, dir, args...)
	eng := token(t, "engineer", "org-1")
	type created struct{ id, job, kind, shape string }
	var runs []created
	submit := func(kind, shape string, body []byte) {
		r := s.do(t, "POST", "/api/"+kind+"/runs", eng, body)
		if r.status != 201 {
			t.Fatalf("create %s: %d %s", kind, r.status, r.body)
		}
		m := r.json(t)
		runs = append(runs, created{m["run_id"].(string), m["job_id"].(string), kind, shape})
	}
	ion, rtp := readExample(t, "ion-seed.json"), readExample(t, "rtp-seed.json")
	withFault := func(b []byte) []byte {
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m["simulate_fault"] = map[string]any{"kind": "transient", "at_progress_pct": 40}
		out, _ := json.Marshal(m)
		return out
	}
	submit("ion", "plain", ion)
	submit("rtp", "plain", rtp)
	submit("rtp", "paused", rtp)
	submit("rtp", "cancelled", rtp)
	submit("ion", "retried", withFault(ion))
	submit("rtp", "retried", withFault(rtp))

	time.Sleep(700 * time.Millisecond)
	for _, r := range runs {
		switch r.shape {
		case "paused":
			if p := s.do(t, "POST", "/api/jobs/"+r.job+"/pause", eng, nil); p.status != 202 && p.status != 200 {
				t.Fatalf("pause: %d %s", p.status, p.body)
			}
		case "cancelled":
			if p := s.do(t, "POST", "/api/jobs/"+r.job+"/cancel", eng, nil); p.status != 202 && p.status != 200 {
				t.Fatalf("cancel: %d %s", p.status, p.body)
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	s.kill9()
	s.start()
	for _, r := range runs {
		if r.shape == "paused" {
			if p := s.do(t, "POST", "/api/jobs/"+r.job+"/resume", eng, nil); p.status != 202 && p.status != 200 {
				t.Fatalf("resume: %d %s", p.status, p.body)
			}
		}
	}
	for _, r := range runs {
		s.waitRun(t, r.kind, r.id, eng, 90*time.Second)
		v := s.do(t, "GET", "/api/runs/"+r.id+"/verify", eng, nil)
		if v.status != 200 {
			t.Fatalf("verify %s: %d %s", r.id, v.status, v.body)
		}
		var rep struct {
			Identical, Finished bool
			Events, Compared    int
			Inputs              int
			Divergence          any
			Model               struct{ Same bool }
			Chain               struct {
				Linked, Seals int
				Sealed        bool
				Breaks        []any
			}
		}
		if err := json.Unmarshal(v.body, &rep); err != nil {
			t.Fatal(err)
		}
		if !rep.Identical || !rep.Finished || rep.Compared+rep.Inputs != rep.Events || !rep.Model.Same ||
			rep.Chain.Linked != rep.Events-1 || len(rep.Chain.Breaks) != 0 || !rep.Chain.Sealed {
			t.Errorf("%s run %s: verify = %s", r.shape, r.id, v.body)
		}
	}
	// The CLI, on the server and offline from the exported records.
	file := filepath.Join(t.TempDir(), "records.json")
	out, err := exec.Command(binPath, "verify", runs[2].id, "--server", "http://"+s.addr, "--token", eng, "--export", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "IDENTICAL") || !strings.Contains(string(out), "chain: intact") {
		t.Fatalf("spectra verify = %v\n%s", err, out)
	}
	out, err = exec.Command(binPath, "verify", "--offline", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "IDENTICAL") {
		t.Fatalf("spectra verify --offline = %v\n%s", err, out)
	}
	// A retried run verifies offline too: its log records the policy it
	// ran under (--retry-base 2s), not the default this binary assumes.
	retried := filepath.Join(t.TempDir(), "retried.json")
	if out, err := exec.Command(binPath, "verify", runs[4].id, "--server", "http://"+s.addr, "--token", eng, "--export", retried).CombinedOutput(); err != nil {
		t.Fatalf("spectra verify --export = %v\n%s", err, out)
	}
	out, err = exec.Command(binPath, "verify", "--offline", "--json", retried).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"retry_base_s": 2`) || !strings.Contains(string(out), `"recorded": true`) {
		t.Errorf("spectra verify --offline of a run retried under --retry-base 2s = %v\n%s", err, out)
	}
	// Another organisation's engineer sees no such run.
	if v := s.do(t, "GET", "/api/runs/"+runs[0].id+"/verify", token(t, "engineer", "org-2"), nil); v.status != 404 {
		t.Errorf("verify of another organisation's run = %d, want 404", v.status)
	}
	// A rewritten record in the exported file: the chain names it offline.
	data, _ := os.ReadFile(file)
	var recs []map[string]any
	_ = json.Unmarshal(data, &recs)
	recs[3]["data"] = map[string]any{"job_id": "forged"}
	data, _ = json.Marshal(recs)
	_ = os.WriteFile(file, data, 0o644)
	out, err = exec.Command(binPath, "verify", "--offline", file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "revision 4") {
		t.Errorf("spectra verify --offline of a forged file = %v\n%s", err, out)
	}
}

// TestVerifySignedSealOffline: a node with --seal-key signs each run's
// seal; the exported records verify offline with only the public key, and
// not with another key.
func TestVerifySignedSealOffline(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "seal.key")
	pub, err := exec.Command(binPath, "seal-key", keyFile).Output()
	if err != nil {
		t.Fatalf("spectra seal-key: %v", err)
	}
	s := startServer(t, filepath.Join(dir, "data"), "--time-scale", "0", "--seal-key", keyFile)
	eng := token(t, "engineer", "org-1")
	r := s.do(t, "POST", "/api/ion/runs", eng, readExample(t, "ion-seed.json"))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["run_id"].(string)
	s.waitRun(t, "ion", id, eng, 30*time.Second)
	v := s.do(t, "GET", "/api/runs/"+id+"/verify", eng, nil)
	if !strings.Contains(string(v.body), `"signed":1`) || !strings.Contains(string(v.body), `"identical":true`) {
		t.Errorf("verify on the node = %s, want identical and one signed seal", v.body)
	}
	// A what-if answers beside the recorded decision and writes nothing.
	before := s.do(t, "GET", "/api/runs/"+id+"/records", eng, nil).body
	w := s.do(t, "POST", "/api/r2r/what-if", eng, `{"setting":{"off":true},"run_ids":["`+id+`"]}`)
	if w.status != 200 || !strings.Contains(string(w.body), `"decisions":1`) {
		t.Errorf("POST /api/r2r/what-if = %d %s", w.status, w.body)
	}
	if after := s.do(t, "GET", "/api/runs/"+id+"/records", eng, nil).body; string(after) != string(before) {
		t.Errorf("the run's records changed after a what-if")
	}
	file := filepath.Join(dir, "records.json")
	if out, err := exec.Command(binPath, "verify", id, "--server", "http://"+s.addr, "--token", eng, "--export", file).CombinedOutput(); err != nil {
		t.Fatalf("spectra verify --export: %v\n%s", err, out)
	}
	s.stop()
	out, err := exec.Command(binPath, "verify", "--offline", "--pubkey", strings.TrimSpace(string(pub)), file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 signatures verified") {
		t.Fatalf("spectra verify --offline --pubkey = %v\n%s", err, out)
	}
	other, _ := exec.Command(binPath, "seal-key", filepath.Join(dir, "other.key")).Output()
	out, err = exec.Command(binPath, "verify", "--offline", "--pubkey", strings.TrimSpace(string(other)), file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "signature") {
		t.Errorf("spectra verify --offline with another key = %v\n%s, want a signature break", err, out)
	}
}
