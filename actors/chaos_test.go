package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/spectra-fab/spectra/actors/actorspb"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// Adversarial tests of the run lifecycle: store failures (some appends
// fail, some are written but their acknowledgement is lost), restarts with
// queued runs, a second writer, and commands racing on one run. Every
// check is made against the log.

var errInjected = errors.New("injected store failure")

// flakyStore fails chosen appends: before writing (the store refused), or
// after writing (the event is in the log but the acknowledgement is lost,
// as when a JetStream publish times out after the server stored it).
type flakyStore struct {
	events.Store
	mu    sync.Mutex
	rules []*failRule
}

type failRule struct {
	typ        string // base event type to fail
	times      int    // appends left to fail
	afterWrite bool   // write, then report the failure
}

func (s *flakyStore) failNext(typ string, times int, afterWrite bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, &failRule{typ: typ, times: times, afterWrite: afterWrite})
}

func (s *flakyStore) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error) {
	s.mu.Lock()
	var hit *failRule
	// An append of several events (one decision) is atomic: it fails as
	// a whole when it carries the chosen type.
	for _, r := range s.rules {
		if r.times > 0 && slices.ContainsFunc(evs, func(ev events.Event) bool { return events.BaseType(ev.Type) == r.typ }) {
			r.times--
			hit = r
			break
		}
	}
	s.mu.Unlock()
	if hit == nil {
		return s.Store.Append(ctx, stream, expected, evs...)
	}
	if hit.afterWrite {
		if _, err := s.Store.Append(ctx, stream, expected, evs...); err != nil {
			return events.AppendResult{}, err
		}
	}
	return events.AppendResult{}, fmt.Errorf("append %s: %w", evs[0].Type, errInjected)
}

// exhausted reports whether every injected failure has happened.
func (s *flakyStore) exhausted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		if r.times > 0 {
			return false
		}
	}
	return true
}

// newRealService runs the real ion and RTP engines.
func newRealService(t *testing.T, store events.Store, cfg Config) *Service {
	t.Helper()
	cfg.AllowFaultInjection = true
	svc, err := New(cfg, store, &memArtifacts{}, Engines(), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

func example(t *testing.T, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFinal polls a run's stream until it is completed, failed or
// cancelled.
func waitFinal(t *testing.T, store events.Store, runID string) *run.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var st *run.Run
	for time.Now().Before(deadline) {
		st = fold(t, store, runID)
		if st.State().Terminal() {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("run %s did not finish: status %q", runID, string(st.State()))
	return nil
}

// checkJobs is checkStream for runs with several jobs: telemetry steps are
// unique per job and attempt, once-only events once per job, every
// RunCancelRequested followed by its RunCancelled with no telemetry in
// between.
func checkJobs(t *testing.T, recs []events.Record) {
	t.Helper()
	type stepKey struct {
		job           string
		attempt, step int
	}
	steps := map[stepKey]bool{}
	perJob := map[string]map[string]int{}
	cancelPending := ""
	for i, r := range recs {
		if r.Revision != uint64(i) {
			t.Fatalf("record %d has revision %d", i, r.Revision)
		}
		p, err := events.Decode(r)
		if err != nil {
			t.Fatalf("decode %s: %v", r.Type, err)
		}
		job := jobOf(p)
		if perJob[job] == nil {
			perJob[job] = map[string]int{}
		}
		perJob[job][events.BaseType(r.Type)]++
		switch e := p.(type) {
		case *events.TelemetryRecorded:
			if cancelPending != "" {
				t.Fatalf("telemetry at revision %d after the cancel of job %s was requested", r.Revision, cancelPending)
			}
			for k := range firstLen(e.Samples) {
				key := stepKey{e.JobID, e.Attempt, e.FirstStep + k}
				if steps[key] {
					t.Fatalf("telemetry step %v recorded twice", key)
				}
				steps[key] = true
			}
		case *events.RunCancelRequested:
			cancelPending = e.JobID
		case *events.RunCancelled:
			cancelPending = ""
		case *events.RunCompleted, *events.RunFailed, *events.RunPaused, *events.RunStarted:
			if cancelPending != "" {
				t.Fatalf("%s at revision %d after the cancel of job %s was requested", r.Type, r.Revision, cancelPending)
			}
		}
	}
	if cancelPending != "" {
		t.Fatalf("cancel of job %s requested but never carried out", cancelPending)
	}
	for job, n := range perJob {
		for _, once := range []string{events.TypeRunQueued, events.TypeRunCompleted, events.TypeRunCancelled,
			events.TypeRunCancelRequested, events.TypeRunFailed} {
			if n[once] > 1 {
				t.Fatalf("job %s: %s occurs %d times", job, once, n[once])
			}
		}
		if n[events.TypeRunCompleted]+n[events.TypeRunCancelled]+n[events.TypeRunFailed] > 1 {
			t.Fatalf("job %s ended more than once: %v", job, n)
		}
	}
}

func jobOf(p events.Payload) string {
	b, _ := json.Marshal(p)
	var j struct {
		JobID string `json:"job_id"`
	}
	_ = json.Unmarshal(b, &j)
	return j.JobID
}

// peakRunning is the most runs of the store running at once, from the log.
func peakRunning(t *testing.T, store events.Store) int {
	t.Helper()
	recs, err := store.ReadAll(context.Background(), 0, events.Filter{Categories: []string{events.CategoryRun}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{}
	peak := 0
	for _, r := range recs {
		switch events.BaseType(r.Type) {
		case events.TypeRunStarted:
			running[r.Stream] = true
		case events.TypeRunCompleted, events.TypeRunFailed, events.TypeRunCancelled, events.TypeRunRetryScheduled:
			delete(running, r.Stream)
		}
		peak = max(peak, len(running))
	}
	return peak
}

func startPositions(t *testing.T, store events.Store, runID string) []uint64 {
	t.Helper()
	var out []uint64
	for _, r := range readRun(t, store, runID) {
		if events.BaseType(r.Type) == events.TypeRunStarted {
			out = append(out, r.Position)
		}
	}
	return out
}

// A cancel whose acknowledgement is lost (the store wrote the request and
// the cancellation, one decision, then the node died) leaves a cancelled
// run; the caller, told to try again, is told it is cancelled.
func TestChaosCancelRequestedIsCarriedOutAfterACrash(t *testing.T) {
	store := &flakyStore{Store: memory.New()}
	svc := newTestService(t, store, Config{TimeScale: 20})
	acc := create(t, svc, `{"steps":400}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	time.Sleep(100 * time.Millisecond)
	store.failNext(events.TypeRunCancelled, 1, true)
	_, err := svc.CancelRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta, Reason: "wrong lot"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CancelRun with RunCancelled failing = %v, want ErrUnavailable", err)
	}
	st := waitFinal(t, store, acc.RunID)
	recs := readRun(t, store, acc.RunID)
	checkJobs(t, recs)
	if string(st.State()) != string(run.Cancelled) {
		t.Fatalf("after a recorded cancel request the run ended %s, want cancelled (events %v)", string(st.State()), types(recs))
	}
	p, _ := events.Decode(recs[len(recs)-1])
	if c, ok := p.(*events.RunCancelled); !ok || c.Reason != "wrong lot" || c.SafeState != "beam off" {
		t.Errorf("last event = %#v, want RunCancelled with the requested reason and the safe state", p)
	}
	if md := recs[len(recs)-1].Metadata; md.UserID != testMeta.UserID {
		t.Errorf("RunCancelled metadata = %+v, want the requester's", md)
	}
	// A second cancel is refused: the run is cancelled.
	if _, err := svc.CancelRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); !errors.Is(err, ErrInvalidState) {
		t.Errorf("second CancelRun = %v, want ErrInvalidState", err)
	}
}

// A log that records a cancel request without its RunCancelled (written
// by a version that appended them one by one, and died between) is carried
// out by whoever loads the run: the run is cancelled with the requester's
// reason and metadata, not run on.
func TestChaosHalfRecordedCancelIsCarriedOut(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 20})
	acc := create(t, svc, `{"steps":400}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	_ = svc.Close()
	st := fold(t, store, acc.RunID)
	md := testMeta
	md.UserID = "operator-7"
	ev, err := events.New(&events.RunCancelRequested{JobID: st.JobID(), Reason: "wrong lot"}, md)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(t.Context(), events.RunStream(acc.RunID), events.ExpectRevision(st.Revision), ev); err != nil {
		t.Fatal(err)
	}
	svc = newTestService(t, store, Config{TimeScale: 20})
	svc.Wake(acc.RunID)
	final := waitFinal(t, store, acc.RunID)
	recs := readRun(t, store, acc.RunID)
	checkJobs(t, recs)
	if final.State() != run.Cancelled {
		t.Fatalf("run ended %s, want cancelled (events %v)", final.State(), types(recs))
	}
	last := recs[len(recs)-1]
	p, _ := events.Decode(last)
	if c, ok := p.(*events.RunCancelled); !ok || c.Reason != "wrong lot" || c.SafeState != "beam off" || last.Metadata.UserID != "operator-7" {
		t.Errorf("last event = %#v by %s, want RunCancelled with the requester's reason, safe state and metadata", p, last.Metadata.UserID)
	}
	if n := types(recs)[events.TypeRunCancelRequested]; n != 1 {
		t.Errorf("RunCancelRequested ×%d, want 1", n)
	}
}

// A cancel refused by the store is asked again; the run is cancelled once.
func TestChaosCancelRetriedAfterHalfRecordedCancel(t *testing.T) {
	store := &flakyStore{Store: memory.New()}
	svc := newTestService(t, store, Config{TimeScale: 20, QueueLimit: 1})
	blocker := create(t, svc, `{"steps":100000}`)
	waitStatus(t, store, blocker.RunID, string(run.Running))
	queued := create(t, svc, `{"steps":10}`) // waits behind the blocker
	store.failNext(events.TypeRunCancelled, 1, false)
	if _, err := svc.CancelRun(t.Context(), RunCommand{RunID: queued.RunID, Meta: testMeta}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CancelRun = %v, want ErrUnavailable", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := svc.CancelRun(t.Context(), RunCommand{RunID: queued.RunID, Meta: testMeta})
		if err == nil || errors.Is(err, ErrInvalidState) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CancelRun keeps failing: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := waitFinal(t, store, queued.RunID)
	recs := readRun(t, store, queued.RunID)
	checkJobs(t, recs)
	if string(st.State()) != string(run.Cancelled) {
		t.Fatalf("queued run ended %s, want cancelled", string(st.State()))
	}
	if n := types(recs); n[events.TypeRunStarted] != 0 {
		t.Errorf("a run cancelled while queued started: %v", n)
	}
	if _, err := svc.CancelRun(t.Context(), RunCommand{RunID: blocker.RunID, Meta: testMeta}); err != nil {
		t.Fatal(err)
	}
}

// A fault's telemetry is appended before the fault's own event
// (RunRetryScheduled or RunFailed). When that second append fails, the
// recovered actor fast-forwards past the fault step: the fault must still
// end the attempt, not be forgotten (RTP fires a fault once) or taken for
// the end of processing (ion ends its engine on a fault).
func TestChaosFaultIsNotLostWhenItsEventFails(t *testing.T) {
	for _, tc := range []struct {
		kind   process.Kind
		recipe string
		fault  process.FaultKind
		failed string // the event that fails once
		want   string
	}{
		{process.KindRTP, "rtp-seed.json", process.FaultPermanent, events.TypeRunFailed, string(run.Failed)},
		{process.KindIon, "ion-seed.json", process.FaultInterlock, events.TypeRunFailed, string(run.Failed)},
		{process.KindRTP, "rtp-seed.json", process.FaultTransient, events.TypeRunRetryScheduled, string(run.Completed)},
		{process.KindIon, "ion-seed.json", process.FaultTransient, events.TypeRunRetryScheduled, string(run.Completed)},
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.kind, tc.fault), func(t *testing.T) {
			for _, afterWrite := range []bool{false, true} {
				store := &flakyStore{Store: memory.New()}
				svc := newRealService(t, store, Config{TimeScale: 0, RetryBase: time.Millisecond})
				store.failNext(tc.failed, 1, afterWrite)
				acc, err := svc.CreateRun(t.Context(), CreateRun{Kind: tc.kind, Recipe: example(t, tc.recipe), Meta: testMeta,
					Fault: &process.Fault{Kind: tc.fault, AtProgress: 50}})
				if err != nil {
					t.Fatal(err)
				}
				st := waitFinal(t, store, acc.RunID)
				recs := readRun(t, store, acc.RunID)
				checkJobs(t, recs)
				n := types(recs)
				if string(st.State()) != tc.want {
					t.Fatalf("lost ack %v: run ended %s, want %s (events %v)", afterWrite, string(st.State()), tc.want, n)
				}
				if !store.exhausted() {
					t.Fatalf("the injected failure never happened")
				}
				if tc.fault == process.FaultTransient {
					if n[events.TypeRunRetryScheduled] != 1 || n[events.TypeRunStarted] != 2 || st.Attempt() != 1 {
						t.Errorf("lost ack %v: events %v, attempt %d; want one retry and two starts", afterWrite, n, st.Attempt())
					}
					continue
				}
				// Nothing after the fault's step: the failure names the
				// last recorded step.
				p, _ := events.Decode(recs[len(recs)-1])
				if f, ok := p.(*events.RunFailed); !ok || f.Step != st.Steps {
					t.Errorf("lost ack %v: last event %#v, want RunFailed at the last recorded step %d", afterWrite, p, st.Steps)
				}
				if n[events.TypeRunCompleted] != 0 || n[events.TypeArtifactStored] != 0 {
					t.Errorf("lost ack %v: a faulted run has results: %v", afterWrite, n)
				}
				_ = svc.Close()
			}
		})
	}
}

// The hard time limit fails the run at the step that crossed it, even when
// the first RunFailed append fails.
func TestChaosHardLimitHoldsAcrossACrash(t *testing.T) {
	store := &flakyStore{Store: memory.New()}
	svc := newTestService(t, store, Config{TimeScale: 0, SoftLimit: 2 * time.Second, HardLimit: 4 * time.Second})
	store.failNext(events.TypeRunFailed, 1, false)
	acc := create(t, svc, `{"steps":1000}`)
	st := waitFinal(t, store, acc.RunID)
	recs := readRun(t, store, acc.RunID)
	checkJobs(t, recs)
	p, _ := events.Decode(recs[len(recs)-1])
	if f, ok := p.(*events.RunFailed); string(st.State()) != string(run.Failed) || !ok || f.Step != 40 || st.Steps != 40 {
		t.Errorf("last event %#v, %d steps recorded; want RunFailed at step 40 with nothing recorded past it", p, st.Steps)
	}
	if n := types(recs); n[events.TypeRunTimeLimitWarning] != 1 {
		t.Errorf("soft warnings = %d, want 1", n[events.TypeRunTimeLimitWarning])
	}
}

// A run's final event is written but its acknowledgement lost: the actor
// crashes and recovers to find the run finished. The slot it held must be
// given back, or the queue loses capacity for good.
func TestChaosLostAckOnTheFinalEventFreesTheSlot(t *testing.T) {
	for _, typ := range []string{events.TypeRunCompleted, events.TypeRunFailed, events.TypeRunCancelled} {
		t.Run(typ, func(t *testing.T) {
			store := &flakyStore{Store: memory.New()}
			svc := newTestService(t, store, Config{TimeScale: 0, QueueLimit: 1, MaxRetries: -1})
			store.failNext(typ, 1, true)
			var acc Accepted
			switch typ {
			case events.TypeRunCompleted:
				acc = create(t, svc, `{"steps":20}`)
			case events.TypeRunFailed:
				acc = create(t, svc, `{"steps":20}`, func(c *CreateRun) {
					c.Fault = &process.Fault{Kind: process.FaultPermanent, AtProgress: 50}
				})
			case events.TypeRunCancelled:
				acc = create(t, svc, `{"steps":100000}`)
				waitStatus(t, store, acc.RunID, string(run.Running))
				_, _ = svc.CancelRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta})
			}
			waitFinal(t, store, acc.RunID)
			checkJobs(t, readRun(t, store, acc.RunID))
			next := create(t, svc, `{"steps":20}`)
			if st := waitFinal(t, store, next.RunID); string(st.State()) != string(run.Completed) {
				t.Fatalf("next run = %s", string(st.State()))
			}
		})
	}
}

// RunRetryScheduled written but its acknowledgement lost: the recovered
// actor waits for its retry. While it waits it must not hold its slot
// (docs/lifecycle.md: the slot is released while it waits).
func TestChaosLostAckOnRetryScheduledReleasesTheSlot(t *testing.T) {
	store := &flakyStore{Store: memory.New()}
	// 300 s of back-off at scale 100: 3 s of wall time.
	svc := newTestService(t, store, Config{TimeScale: 100, QueueLimit: 1, RetryBase: 300 * time.Second})
	store.failNext(events.TypeRunRetryScheduled, 1, true)
	faulty := create(t, svc, `{"steps":30}`, func(c *CreateRun) {
		c.Fault = &process.Fault{Kind: process.FaultTransient, AtProgress: 50}
	})
	waitStatus(t, store, faulty.RunID, string(run.Retrying))
	other := create(t, svc, `{"steps":20}`)
	waitFinal(t, store, other.RunID)
	waitFinal(t, store, faulty.RunID)
	fs, ot := startPositions(t, store, faulty.RunID), startPositions(t, store, other.RunID)
	if len(fs) != 2 || len(ot) != 1 || ot[0] > fs[1] {
		t.Errorf("starts: faulty run %v, other run %v; want the other run admitted while the faulty one waited", fs, ot)
	}
	checkJobs(t, readRun(t, store, faulty.RunID))
	if p := peakRunning(t, store); p > 1 {
		t.Errorf("peak running = %d, want at most 1", p)
	}
}

// A run that crashes on store errors while it holds its slot recovers and
// reclaims that slot; nothing queued behind it is admitted meanwhile.
func TestChaosCrashWhileHoldingASlotKeepsTheLimit(t *testing.T) {
	store := &flakyStore{Store: memory.New()}
	svc := newTestService(t, store, Config{TimeScale: 0, QueueLimit: 1})
	store.failNext(events.TypeTelemetryRecorded, 3, false)
	store.failNext(events.TypeRunPhaseChanged, 1, true)
	store.failNext(events.TypeArtifactStored, 1, true)
	var ids []string
	for range 4 {
		ids = append(ids, create(t, svc, `{"steps":60,"alarm_at":25}`).RunID)
	}
	for _, id := range ids {
		if st := waitFinal(t, store, id); string(st.State()) != string(run.Completed) {
			t.Fatalf("run %s = %s", id, string(st.State()))
		}
		recs := readRun(t, store, id)
		checkJobs(t, recs)
		if n := types(recs); n[events.TypeRunStarted] != 1 || n[events.TypeSPCViolation] != 1 || n[events.TypeArtifactStored] != 1 {
			t.Errorf("run %s events %v", id, n)
		}
	}
	if p := peakRunning(t, store); p != 1 {
		t.Errorf("peak running from the log = %d, want 1", p)
	}
}

// Two nodes on one store both activate a run (a duplicate activation, the
// reconciler): one is fenced. The fenced actor's slot must go back to its
// node's queue, or that node never admits another run.
func TestChaosFencedActorGivesBackItsSlot(t *testing.T) {
	store := memory.New()
	a := newTestService(t, store, Config{TimeScale: 20, QueueLimit: 1})
	b := newTestService(t, store, Config{TimeScale: 20, QueueLimit: 1})
	acc := create(t, a, `{"steps":200}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	b.Wake(acc.RunID)
	waitFinal(t, store, acc.RunID)
	checkJobs(t, readRun(t, store, acc.RunID))
	if f := a.Fenced() + b.Fenced(); f != 1 {
		t.Fatalf("fenced = %d, want 1", f)
	}
	onA, onB := create(t, a, `{"steps":20}`), create(t, b, `{"steps":20}`)
	for _, id := range []string{onA.RunID, onB.RunID} {
		if st := waitFinal(t, store, id); string(st.State()) != string(run.Completed) {
			t.Fatalf("run %s = %s", id, string(st.State()))
		}
	}
}

// A paused run woken on a second node: that node's actor loads "paused",
// takes a slot and waits, appending nothing, so nothing fences it. The run
// is resumed and finishes on the first node. The stale actor must notice
// and stand down, or it holds its node's slot for ever.
func TestChaosStalePausedActorStandsDown(t *testing.T) {
	store := memory.New()
	a := newTestService(t, store, Config{TimeScale: 20, QueueLimit: 1})
	b := newTestService(t, store, Config{TimeScale: 20, QueueLimit: 1})
	acc := create(t, a, `{"steps":100}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	if _, err := a.PauseRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); err != nil {
		t.Fatal(err)
	}
	b.Wake(acc.RunID) // the reconciler of node b
	time.Sleep(200 * time.Millisecond)
	if _, err := a.ResumeRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); err != nil {
		t.Fatal(err)
	}
	waitFinal(t, store, acc.RunID)
	checkJobs(t, readRun(t, store, acc.RunID))
	onB := create(t, b, `{"steps":20}`)
	if st := waitFinal(t, store, onB.RunID); string(st.State()) != string(run.Completed) {
		t.Fatalf("run on node b = %s", string(st.State()))
	}
	// A command sent to node b now reaches a fresh actor that knows the
	// run is complete.
	if _, err := b.CancelRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); !errors.Is(err, ErrInvalidState) {
		t.Errorf("cancel of the completed run on node b = %v, want ErrInvalidState", err)
	}
}

// After a restart, runs that were running reclaim their slots before any
// queued run is admitted (docs/lifecycle.md, Scheduling), and queued runs
// are admitted by priority: the queue limit holds in the log.
func TestChaosRestartReclaimsRunningSlotsBeforeAdmittingQueued(t *testing.T) {
	for i := range 3 {
		store := memory.New()
		svc := newTestService(t, store, Config{TimeScale: 20, QueueLimit: 1})
		running := create(t, svc, `{"steps":300}`)
		waitStatus(t, store, running.RunID, string(run.Running))
		low := create(t, svc, `{"steps":20}`)
		high := create(t, svc, `{"steps":20}`, func(c *CreateRun) { c.Priority = 5 })
		for _, id := range []string{low.RunID, high.RunID} {
			deadline := time.Now().Add(10 * time.Second)
			for types(readRun(t, store, id))[events.TypeRunQueued] == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		}
		time.Sleep(100 * time.Millisecond)
		_ = svc.Close()

		svc2 := newTestService(t, store, Config{TimeScale: 20, QueueLimit: 1})
		svc2.Wake(low.RunID, high.RunID, running.RunID) // the order a node's read model lists them in varies
		for _, id := range []string{running.RunID, low.RunID, high.RunID} {
			if st := waitFinal(t, store, id); string(st.State()) != string(run.Completed) {
				t.Fatalf("run %s = %s", id, string(st.State()))
			}
			checkJobs(t, readRun(t, store, id))
		}
		if p := peakRunning(t, store); p != 1 {
			t.Fatalf("round %d: peak running from the log = %d, want 1 (the queue limit)", i, p)
		}
		hs, ls := startPositions(t, store, high.RunID), startPositions(t, store, low.RunID)
		if hs[0] > ls[0] {
			t.Fatalf("round %d: low priority started at %d before high at %d", i, ls[0], hs[0])
		}
		_ = svc2.Close()
	}
}

// Commands racing on one run from many goroutines: each gets exactly one
// outcome; every accepted command's event is in the log at the revision
// its reply names, and the log holds no command event nobody was told of.
func TestChaosConcurrentCommandsOneOutcomeEach(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 20, QueueLimit: 8})
	acc := create(t, svc, `{"steps":100000}`)
	waitStatus(t, store, acc.RunID, string(run.Running))

	type outcome struct {
		verb string
		acc  Accepted
		err  error
	}
	verbs := []string{"pause", "resume", "cancel", "retry"}
	var mu sync.Mutex
	var outs []outcome
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				verb := verbs[(g+i*3)%len(verbs)]
				c := RunCommand{RunID: acc.RunID, Meta: testMeta}
				var res Accepted
				var err error
				switch verb {
				case "pause":
					res, err = svc.PauseRun(context.Background(), c)
				case "resume":
					res, err = svc.ResumeRun(context.Background(), c)
				case "cancel":
					res, err = svc.CancelRun(context.Background(), c)
				case "retry":
					res, err = svc.RetryJob(context.Background(), c)
				}
				mu.Lock()
				outs = append(outs, outcome{verb, res, err})
				mu.Unlock()
				time.Sleep(time.Duration(g) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	// End it, whatever state it is in.
	for {
		_, err := svc.CancelRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta})
		if err == nil || errors.Is(err, ErrInvalidState) {
			break
		}
		t.Fatalf("final cancel: %v", err)
	}
	waitFinal(t, store, acc.RunID)
	recs := readRun(t, store, acc.RunID)
	checkJobs(t, recs)

	want := map[string]string{"pause": events.TypeRunPaused, "resume": events.TypeRunResumed,
		"cancel": events.TypeRunCancelled, "retry": events.TypeRunRetried}
	accepted := map[string]int{}
	seen := map[uint64]bool{}
	for _, o := range outs {
		switch {
		case o.err == nil:
			accepted[want[o.verb]]++
			if o.acc.Revision >= uint64(len(recs)) {
				t.Fatalf("%s accepted at revision %d, past the log's end", o.verb, o.acc.Revision)
			}
			// The reply names the revision after the command: its event is
			// there, or (retry) just before the RunQueued it led to.
			rev := o.acc.Revision
			if o.verb == "retry" && events.BaseType(recs[rev].Type) == events.TypeRunQueued {
				rev--
			}
			if got := events.BaseType(recs[rev].Type); got != want[o.verb] {
				t.Fatalf("%s accepted at revision %d, but that event is %s", o.verb, rev, got)
			}
			if seen[rev] {
				t.Fatalf("two accepted commands name revision %d", rev)
			}
			seen[rev] = true
		case errors.Is(o.err, ErrInvalidState):
		default:
			t.Fatalf("%s: unexpected error %v", o.verb, o.err)
		}
	}
	n := types(recs)
	for _, typ := range []string{events.TypeRunPaused, events.TypeRunResumed, events.TypeRunRetried} {
		if n[typ] != accepted[typ] {
			t.Errorf("%s: %d in the log, %d accepted", typ, n[typ], accepted[typ])
		}
	}
	// The final cancel may or may not have been needed.
	if d := n[events.TypeRunCancelled] - accepted[events.TypeRunCancelled]; d != 0 && d != 1 {
		t.Errorf("RunCancelled: %d in the log, %d accepted in the race", n[events.TypeRunCancelled], accepted[events.TypeRunCancelled])
	}
	if accepted[events.TypeRunPaused] == 0 || accepted[events.TypeRunRetried] == 0 {
		t.Logf("accepted: %v (the race exercised little)", accepted)
	}
}

// The same idempotency key from many goroutines at once makes one run.
func TestChaosIdempotencyKeyUnderConcurrency(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 0})
	var wg sync.WaitGroup
	ids := make([]string, 32)
	errs := make([]error, 32)
	for i := range ids {
		wg.Go(func() {
			acc, err := svc.CreateRun(context.Background(), CreateRun{Kind: process.KindIon,
				Recipe: json.RawMessage(`{"steps":5}`), Meta: testMeta, IdempotencyKey: "same-key"})
			ids[i], errs[i] = acc.RunID, err
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("request %d: run %q, %v; request 0: run %q", i, ids[i], errs[i], ids[0])
		}
	}
	waitFinal(t, store, ids[0])
	recs, _ := store.ReadAll(t.Context(), 0, events.Filter{Types: []string{events.TypeRunRequested}}, 0)
	if len(recs) != 1 {
		t.Fatalf("RunRequested events = %d, want 1", len(recs))
	}
	checkJobs(t, readRun(t, store, ids[0]))
	if n := types(readRun(t, store, ids[0])); n[events.TypeRunStarted] != 1 {
		t.Errorf("events %v, want one start", n)
	}
}

// gatedStore holds reads of run streams until released, so a test can
// queue messages for an actor that is still loading.
type gatedStore struct {
	events.Store
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

func (s *gatedStore) ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error) {
	s.mu.Lock()
	gate, entered := s.gate, s.entered
	s.mu.Unlock()
	if gate != nil && strings.HasPrefix(stream, "run-") {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
	}
	return s.Store.ReadStream(ctx, stream, dir, from, limit)
}

// runPID finds the local actor of a run.
func runPID(t *testing.T, svc *Service, runID string) *actor.PID {
	t.Helper()
	reg := svc.system.ProcessRegistry
	for _, bucket := range reg.LocalPIDs.LocalPIDs {
		for _, id := range bucket.Keys() {
			if strings.Contains(id, "/run-"+runID+"-") {
				return &actor.PID{Address: reg.Address, Id: id}
			}
		}
	}
	t.Fatalf("no actor for run %s", runID)
	return nil
}

// A finished run's actor retires after it has been idle a while. A retry
// that reaches it just as it retires (queued behind its ReceiveTimeout)
// must still be carried out by a live actor: otherwise the RunRetried is
// in the log, the command was accepted, and nobody runs the new job.
func TestChaosRetryQueuedBehindRetirementIsNotOrphaned(t *testing.T) {
	store := &gatedStore{Store: memory.New()}
	svc := newTestService(t, store, Config{TimeScale: 0})
	acc := create(t, svc, `{"steps":20}`, func(c *CreateRun) {
		c.Fault = &process.Fault{Kind: process.FaultPermanent, AtProgress: 50}
	})
	waitStatus(t, store, acc.RunID, string(run.Failed))
	_ = svc.Close()

	svc2 := newTestService(t, store, Config{TimeScale: 0})
	gate := make(chan struct{})
	store.mu.Lock()
	store.gate, store.entered = gate, make(chan struct{}, 1)
	entered := store.entered
	store.mu.Unlock()
	svc2.Wake(acc.RunID)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the actor never loaded")
	}
	pid := runPID(t, svc2, acc.RunID)
	// The actor is loading; behind its load: the idle timeout, then a retry.
	svc2.system.Root.Send(pid, &actor.ReceiveTimeout{})
	fut := svc2.system.Root.RequestFuture(pid, &actorspb.RunCommand{RunId: acc.RunID, Verb: actorspb.Verb_VERB_RETRY,
		Meta: metaTo(testMeta)}, 10*time.Second)
	store.mu.Lock()
	store.gate = nil
	store.mu.Unlock()
	close(gate)

	res, err := fut.Result()
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	reply := res.(*actorspb.CommandReply)
	if reply.ErrorCode != "" {
		t.Fatalf("retry refused: %s %s", reply.ErrorCode, reply.ErrorMessage)
	}
	st := waitStatus(t, store, acc.RunID, string(run.Completed))
	if st.JobID() != reply.JobId {
		t.Errorf("completed job %s, want the retry's %s", st.JobID(), reply.JobId)
	}
	checkJobs(t, readRun(t, store, acc.RunID))
}

// An event of a type this node does not know (a newer node wrote it during
// a rolling upgrade) is kept and advances the revision: the run is not
// fenced by its own log, and goes on to completion.
func TestChaosUnknownEventTypeDoesNotFenceTheRun(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 20})
	acc := create(t, svc, `{"steps":60}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	if _, err := svc.PauseRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); err != nil {
		t.Fatal(err)
	}
	_ = svc.Close()
	st := fold(t, store, acc.RunID)
	unknown := events.Event{ID: events.NewID(), Type: "RunHologramTaken.v2", Data: json.RawMessage(`{"job_id":"` + st.JobID() + `"}`), Metadata: testMeta}
	if _, err := store.Append(t.Context(), events.RunStream(acc.RunID), events.ExpectRevision(st.Revision), unknown); err != nil {
		t.Fatal(err)
	}
	svc = newTestService(t, store, Config{TimeScale: 20})
	svc.Wake(acc.RunID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := svc.ResumeRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ResumeRun after an unknown event = %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	final := waitFinal(t, store, acc.RunID)
	if final.State() != run.Completed || final.Unknown != 1 || svc.Fenced() != 0 {
		t.Fatalf("run ended %s with %d unknown events, %d fenced; want completed, 1, 0", final.State(), final.Unknown, svc.Fenced())
	}
	for i, rec := range readRun(t, store, acc.RunID) {
		if rec.Revision != uint64(i) {
			t.Fatalf("revision %d at index %d: the stream has a gap", rec.Revision, i)
		}
	}
}
