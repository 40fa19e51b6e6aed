package run_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
	"github.com/spectra-fab/spectra/run"
)

// host drives a run aggregate as the run actor does (load → decide →
// append → apply), over a slice for a log, so verification can be tested
// against logs with pauses, cancels, retries and crashes at any step.
type host struct {
	t         *testing.T
	id        string
	policy    run.Policy
	newEngine run.NewEngine
	key       ed25519.PrivateKey
	r         *run.Run
	recs      []events.Record
	eng       process.Engine
}

func newHost(t *testing.T, id string, p run.Policy, ne run.NewEngine, req *events.RunRequested) *host {
	t.Helper()
	h := &host{t: t, id: id, policy: p, newEngine: ne, r: run.New(id, p)}
	h.append(req)
	return h
}

func (h *host) append(ps ...events.Payload) {
	h.t.Helper()
	if len(ps) == 0 {
		return
	}
	evs := make([]events.Event, len(ps))
	for i, p := range ps {
		ev, err := events.New(p, creator)
		if err != nil {
			h.t.Fatal(err)
		}
		evs[i] = ev
	}
	events.Chain(h.r.Head, evs, h.key)
	for _, ev := range evs {
		rec := events.Record{ID: ev.ID, Stream: events.RunStream(h.id), Revision: uint64(len(h.recs)),
			Position: uint64(len(h.recs) + 1), Type: ev.Type, Time: time.Unix(2000, 0).UTC(), Data: ev.Data, Metadata: ev.Metadata}
		h.recs = append(h.recs, rec)
		h.r.Apply(rec)
	}
	switch h.r.State() {
	case run.Retrying, run.Completed, run.Failed, run.Cancelled:
		h.eng = nil
	}
}

func (h *host) decide(cmd any) {
	h.t.Helper()
	ps, err := h.r.Decide(cmd)
	if err != nil {
		h.t.Fatalf("Decide(%T) = %v", cmd, err)
	}
	h.append(ps...)
}

func (h *host) start() {
	h.t.Helper()
	h.decide(run.Queue{})
	opts := h.r.Options()
	adj := map[string]float64{}
	if h.r.Request.Kind == process.KindIon {
		adj["dose_setpoint_scale"] = 1.002
	}
	opts.Attempt, opts.R2R = h.r.NextAttempt(), adj
	eng, err := h.newEngine(h.r.Request.Kind, h.r.Request.Recipe, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.decide(run.Start{R2R: adj, R2RBasis: map[string]any{"tool": "IMP-01", "n": 3, "ewma": 0.1 + 0.2}, Node: "node-1",
		Model: "test-model", Setup: eng.SetupMarks()})
	h.eng = eng
}

// step steps once; it reports whether the run still steps.
func (h *host) step() bool {
	h.t.Helper()
	if h.r.State() != run.Running || h.eng == nil {
		return false
	}
	if h.r.Done() {
		h.finish()
		return false
	}
	h.append(h.r.Advance(h.eng.Step(), h.eng.SafeState())...)
	if h.r.State() == run.Running && h.r.Done() {
		h.finish()
		return false
	}
	return h.r.State() == run.Running
}

func (h *host) finish() {
	h.t.Helper()
	marks := h.eng.FinishMarks()
	out := h.eng.Finish()
	var stored []events.ArtifactStored
	for _, a := range out.Artifacts {
		stored = append(stored, events.ArtifactStored{Name: a.Name, ContentType: a.ContentType, Size: len(a.Data),
			URI: "file:///artifacts/" + h.id + "/" + a.Name})
	}
	h.decide(run.Complete{Finish: marks, Artifacts: stored, Outcome: out})
}

// stop asks first, as the actor does: a refused command (the run ended)
// appends nothing, not even a flush.
func (h *host) stop(cmd any) {
	h.t.Helper()
	if _, err := h.r.Decide(cmd); err != nil && !errors.Is(err, run.ErrUnflushed) || h.r.State().Terminal() {
		// (Decide answers ErrUnflushed before it looks at the state: a
		// run that failed on its hard limit keeps its unflushed batch.)
		return
	}
	h.append(h.r.Flush()...)
	if c, ok := cmd.(run.Cancel); ok {
		if h.eng != nil {
			c.SafeState = h.eng.SafeState()
		}
		cmd = c
	}
	h.decide(cmd)
}

// crash loses what the host stepped and did not record, and recovers as a
// fresh actor does: fold the log, rebuild the engine, fast-forward.
func (h *host) crash() {
	h.t.Helper()
	h.r = run.New(h.id, h.policy)
	for _, rec := range h.recs {
		h.r.Apply(rec)
	}
	h.eng = nil
	if st := h.r.State(); st != run.Running && st != run.Paused {
		return
	}
	eng, err := h.newEngine(h.r.Request.Kind, h.r.Request.Recipe, h.r.Options())
	if err != nil {
		h.t.Fatal(err)
	}
	h.eng = eng
	var missing []events.Payload
	for !h.r.RecoveredTo() && !h.r.Done() {
		missing = append(missing, h.r.Advance(eng.Step(), eng.SafeState())...)
	}
	h.append(missing...)
}

// runTo steps until the run stops stepping or has taken n steps.
func (h *host) runTo(n int) {
	for h.r.StepsTaken() < n && h.step() {
	}
}

func (h *host) runOut() {
	for h.step() {
	}
}

func testEngine(kind process.Kind, recipe json.RawMessage, opts process.Options) (process.Engine, error) {
	return processtest.Factory{Kind: kind}.New(recipe, opts)
}

// scenarios build logs of every shape a run's log can take.
var scenarios = map[string]func(h *host, rng *rand.Rand, steps int){
	"completed": func(h *host, rng *rand.Rand, steps int) {
		h.start()
		h.runOut()
	},
	"paused_and_resumed": func(h *host, rng *rand.Rand, steps int) {
		h.start()
		for range 1 + rng.IntN(3) {
			h.runTo(h.r.StepsTaken() + 1 + rng.IntN(steps/3))
			if h.r.State() != run.Running {
				break
			}
			h.stop(run.Pause{})
			h.decide(run.Resume{})
		}
		h.runOut()
	},
	"cancelled": func(h *host, rng *rand.Rand, steps int) {
		switch rng.IntN(3) {
		case 0: // while queued
			h.decide(run.Queue{})
			h.decide(run.Cancel{Reason: "wrong lot", By: "op-1"})
		case 1: // while running
			h.start()
			h.runTo(1 + rng.IntN(steps-1))
			h.stop(run.Cancel{By: "op-1"})
		default: // while paused
			h.start()
			h.runTo(1 + rng.IntN(steps-1))
			h.stop(run.Pause{})
			h.stop(run.Cancel{Reason: "tool down", By: "op-2"})
		}
	},
	"retried": func(h *host, rng *rand.Rand, steps int) {
		// A transient fault (when the request injects one) retries
		// automatically; a cancel and a manual retry start a new job.
		h.start()
		if h.r.Request.Fault != nil {
			h.runOut()
			if h.r.State() == run.Retrying {
				h.start()
			}
		}
		h.runTo(h.r.StepsTaken() + 1 + rng.IntN(steps-1))
		if h.r.State() == run.Running {
			h.stop(run.Cancel{By: "eng-1"})
		}
		if h.r.State() == run.Completed {
			return
		}
		h.decide(run.Retry{JobID: "job-2", Seed: rng.Int64()})
		h.start()
		h.runOut()
	},
	"crash_recovered": func(h *host, rng *rand.Rand, steps int) {
		h.start()
		for range 1 + rng.IntN(3) {
			h.runTo(h.r.StepsTaken() + 1 + rng.IntN(steps/2))
			h.crash()
			if rng.IntN(2) == 0 && h.r.State() == run.Running {
				h.stop(run.Pause{})
				h.crash()
				h.decide(run.Resume{})
			}
		}
		h.runOut()
	},
}

func request(id string, kind process.Kind, recipe string, seed int64, fault *process.Fault) *events.RunRequested {
	return &events.RunRequested{RunID: id, JobID: "job-1", Kind: kind, Recipe: json.RawMessage(recipe), Seed: seed,
		Fault: fault, CreatedAt: time.Unix(900, 0).UTC()}
}

// TestVerifyIdentical: 50 runs of each shape re-derive their logs
// exactly, and their chains hold.
func TestVerifyIdentical(t *testing.T) {
	for name, scenario := range scenarios {
		t.Run(name, func(t *testing.T) {
			for i := range 50 {
				rng := rand.New(rand.NewPCG(uint64(i), 18))
				steps := 20 + rng.IntN(60)
				id := fmt.Sprintf("ION-%s-%02d", name, i)
				var fault *process.Fault
				if name == "retried" && i%2 == 0 {
					fault = &process.Fault{Kind: process.FaultTransient, AtProgress: 30 + rng.Float64()*40}
				}
				recipe := fmt.Sprintf(`{"steps":%d,"alarm_at":%d}`, steps, rng.IntN(steps))
				h := newHost(t, id, policy, testEngine, request(id, process.KindIon, recipe, rng.Int64(), fault))
				scenario(h, rng, steps)
				rep := run.Verify(id, h.recs, testEngine, policy, "test-model", nil)
				if !rep.Identical || !rep.Chain.Intact() || rep.Compared+rep.Inputs != len(h.recs) {
					t.Fatalf("run %d: Verify = identical %v, compared %d + inputs %d of %d, divergence %s, chain %+v",
						i, rep.Identical, rep.Compared, rep.Inputs, len(h.recs), show(rep.Divergence), rep.Chain)
				}
				if !rep.Finished {
					t.Fatalf("run %d: Verify.Finished = false (status %s), want a finished run", i, rep.Status)
				}
				if len(rep.Model.Recorded) > 0 && !rep.Model.Same {
					t.Errorf("run %d: Model = %+v, want the same model", i, rep.Model)
				}
			}
		})
	}
}

func show(d *run.Divergence) string {
	if d == nil {
		return "none"
	}
	b, _ := json.Marshal(d)
	return string(b)
}

// Real engines: the physics re-derives bit for bit too.
var realRecipes = map[process.Kind]string{
	process.KindIon: `{"species":"B","energy_kev":20,"dose_atoms_cm2":2e14,"tilt_deg":7,"twist_deg":0,"beam_current_ma":5,"scan_speed_mm_s":50,"wafer_diameter_mm":300}`,
	process.KindRTP: `{"segments":[{"target_temp_c":900,"duration_s":3,"ramp_rate_c_s":100},{"target_temp_c":900,"duration_s":3},{"target_temp_c":400,"duration_s":3,"ramp_rate_c_s":50}],
		"initial_temp_c":25,"n2_flow_slm":10,"o2_flow_slm":0,"controller_type":"pid","pid_kp":5,"pid_ki":0.5,"pid_kd":1}`,
}

func TestVerifyRealEngines(t *testing.T) {
	n := 4
	if testing.Short() {
		n = 1
	}
	for kind, recipe := range realRecipes {
		for name, scenario := range scenarios {
			t.Run(string(kind)+"/"+name, func(t *testing.T) {
				for i := range n {
					rng := rand.New(rand.NewPCG(uint64(i), 7))
					id := fmt.Sprintf("%s-%s-%d", strings.ToUpper(string(kind)), name, i)
					var fault *process.Fault
					if name == "retried" {
						fault = &process.Fault{Kind: process.FaultTransient, AtProgress: 40}
					}
					h := newHost(t, id, policy, run.Engine, request(id, kind, recipe, rng.Int64(), fault))
					h.start()
					steps := h.r.StepsTaken()
					h.crash() // measure the run: step a copy to its end
					probe, _ := run.Engine(kind, json.RawMessage(recipe), process.Options{Seed: 1})
					for !probe.Step().Done && steps < 100000 {
						steps++
					}
					h = newHost(t, id, policy, run.Engine, request(id, kind, recipe, rng.Int64(), fault))
					scenario(h, rng, max(steps, 4))
					rep := run.Verify(id, h.recs, run.Engine, policy, "test-model", nil)
					if !rep.Identical || !rep.Chain.Intact() {
						t.Fatalf("Verify = identical %v, divergence %s, chain breaks %v\nlog:\n%s", rep.Identical, show(rep.Divergence), rep.Chain.Breaks, dump(h.recs))
					}
				}
			})
		}
	}
}

// perturbed is an engine whose model changed after the fact: from step
// at on, its beam current reads 0.1 % higher.
type perturbed struct {
	process.Engine
	at int
}

func (p *perturbed) Step() process.StepResult {
	res := p.Engine.Step()
	if res.N >= p.at {
		res.Sample["beam_current_ma"] *= 1.001
	}
	return res
}

func TestVerifyChangedModelDivergesAtFirstAffectedEvent(t *testing.T) {
	const id = "ION-changed"
	h := newHost(t, id, policy, testEngine, request(id, process.KindIon, `{"steps":45}`, 11, nil))
	h.start()
	h.runOut()
	changed := func(kind process.Kind, recipe json.RawMessage, opts process.Options) (process.Engine, error) {
		e, err := testEngine(kind, recipe, opts)
		return &perturbed{Engine: e, at: 23}, err
	}
	rep := run.Verify(id, h.recs, changed, policy, "other-model", nil)
	if rep.Identical || rep.Divergence == nil {
		t.Fatalf("Verify(changed engine) identical = %v, want a divergence", rep.Identical)
	}
	// The third telemetry batch (steps 20–29) is the first to hold step 23.
	var want uint64
	for _, rec := range h.recs {
		var e events.TelemetryRecorded
		if events.BaseType(rec.Type) == events.TypeTelemetryRecorded && json.Unmarshal(rec.Data, &e) == nil && e.FirstStep == 20 {
			want = rec.Revision
		}
	}
	d := rep.Divergence
	if d.Revision != want || d.Recorded == nil || d.Replayed == nil || d.Recorded.Type != events.TypeTelemetryRecorded {
		t.Fatalf("Divergence = %s, want the telemetry batch at revision %d with both versions", show(d), want)
	}
	if rep.Model.Same || rep.Model.Note == "" {
		t.Errorf("Model = %+v, want a differing model with a note", rep.Model)
	}
	if !rep.Chain.Intact() {
		t.Errorf("Chain = %+v, want intact (the log was not touched)", rep.Chain)
	}
}

func TestVerifyNamesEveryBrokenLink(t *testing.T) {
	const id = "ION-tampered"
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t, id, policy, testEngine, request(id, process.KindIon, `{"steps":60}`, 5, nil))
	h.key = key
	h.start()
	h.runOut()
	rep := run.Verify(id, h.recs, testEngine, policy, "test-model", pub)
	if !rep.Identical || !rep.Chain.Intact() || !rep.Chain.Sealed || rep.Chain.Signed != 1 {
		t.Fatalf("Verify(untouched) = identical %v, chain %+v; want identical, intact, sealed and signed", rep.Identical, rep.Chain)
	}
	// Rewrite revision 5 (a telemetry batch: one sample changed) and
	// remove revision 8, keeping the revisions as the store had them.
	tampered := append([]events.Record(nil), h.recs...)
	tampered[5].Data = json.RawMessage(strings.Replace(string(tampered[5].Data), `"x":[`, `"x":[1e9,`, 1))
	tampered = append(tampered[:8], tampered[9:]...)
	rep = run.Verify(id, tampered, testEngine, policy, "test-model", pub)
	got := map[uint64]string{}
	for _, b := range rep.Chain.Breaks {
		got[b.Revision] += b.Kind + " "
	}
	if !strings.Contains(got[6], events.BreakLink) || !strings.Contains(got[9], events.BreakLink) || !strings.Contains(got[9], events.BreakGap) {
		t.Fatalf("Chain.Breaks = %+v, want a broken link at 6 (after the rewrite) and at 9 (after the removal), and a gap", rep.Chain.Breaks)
	}
	if rep.Identical || rep.Divergence.Revision != 5 {
		t.Errorf("Divergence = %s, want the rewritten revision 5", show(rep.Divergence))
	}
	// A forged signature fails with the public key.
	forged := append([]events.Record(nil), h.recs...)
	last := &forged[len(forged)-1]
	last.Metadata.SealSig = strings.Repeat("A", len(last.Metadata.SealSig)-2) + "=="
	if rep := run.Verify(id, forged, testEngine, policy, "test-model", pub); len(rep.Chain.Breaks) != 1 || rep.Chain.Breaks[0].Kind != events.BreakSignature {
		t.Errorf("Chain.Breaks(forged signature) = %+v, want one signature break", rep.Chain.Breaks)
	}
}

// dump lists a log without its samples, for failure messages.
func dump(recs []events.Record) string {
	var b strings.Builder
	for _, rec := range recs {
		var m map[string]any
		_ = json.Unmarshal(rec.Data, &m)
		delete(m, "samples")
		delete(m, "result")
		fmt.Fprintf(&b, "%d %s %v\n", rec.Revision, events.BaseType(rec.Type), m)
	}
	return b.String()
}
