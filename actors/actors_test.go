package actors

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

type memArtifacts struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (m *memArtifacts) Put(_ context.Context, key, _ string, data []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		m.data = map[string][]byte{}
	}
	m.data[key] = data
	return "mem://" + key, nil
}

var testMeta = events.Metadata{OrgID: "org-1", UserID: "u-1", Role: "engineer", RequestID: "req-1"}

func newTestService(t *testing.T, store events.Store, cfg Config) *Service {
	t.Helper()
	cfg.AllowFaultInjection = true
	if cfg.RetryBase == 0 {
		cfg.RetryBase = 100 * time.Millisecond
	}
	svc, err := New(cfg, store, &memArtifacts{}, map[process.Kind]EngineFactory{process.KindIon: testFactory{}}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

func create(t *testing.T, svc *Service, recipe string, mods ...func(*CreateRun)) Accepted {
	t.Helper()
	c := CreateRun{Kind: process.KindIon, Recipe: json.RawMessage(recipe), Meta: testMeta}
	for _, m := range mods {
		m(&c)
	}
	acc, err := svc.CreateRun(t.Context(), c)
	if err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	return acc
}

// waitStatus polls the run's stream until its folded status is want.
func waitStatus(t *testing.T, store events.Store, runID, want string) *run.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var st *run.Run
	for time.Now().Before(deadline) {
		st = fold(t, store, runID)
		if string(st.State()) == want {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("run %s status = %q, want %q", runID, string(st.State()), want)
	return nil
}

func fold(t *testing.T, store events.Store, runID string) *run.Run {
	t.Helper()
	st := run.New(runID, run.Policy{})
	for _, rec := range readRun(t, store, runID) {
		st.Apply(rec)
	}
	return st
}

func readRun(t *testing.T, store events.Store, runID string) []events.Record {
	t.Helper()
	recs, err := store.ReadStream(context.Background(), events.RunStream(runID), events.Forwards, 0, 0)
	if err != nil {
		t.Fatalf("ReadStream(%s): %v", runID, err)
	}
	return recs
}

func types(recs []events.Record) map[string]int {
	n := map[string]int{}
	for _, r := range recs {
		n[events.BaseType(r.Type)]++
	}
	return n
}

// checkStream verifies the invariants every run stream keeps: gapless
// revisions, once-only events once (per job), every telemetry step of an
// attempt of a job once.
func checkStream(t *testing.T, recs []events.Record) {
	t.Helper()
	type stepKey struct {
		job           string
		attempt, step int
	}
	// The run actor links each append's events to the head it keeps
	// (run.ApplyLinked): a wrong head breaks the chain at the next append.
	if rep := events.CheckChain(recs, nil); len(rep.Breaks) > 0 {
		t.Fatalf("chain breaks: %+v", rep.Breaks)
	}
	steps := map[stepKey]bool{}
	once := map[string]int{}
	// Each event names its predecessor's link: the actor chains what it
	// appends onto the head its aggregate holds.
	if rep := events.CheckChain(recs, nil); len(rep.Breaks) > 0 {
		t.Fatalf("the run's hash chain breaks: %+v", rep.Breaks)
	}
	for i, r := range recs {
		if r.Revision != uint64(i) {
			t.Fatalf("record %d has revision %d", i, r.Revision)
		}
		if p, _ := events.Decode(r); p != nil {
			if tr, ok := p.(*events.TelemetryRecorded); ok {
				for k := range firstLen(tr.Samples) {
					key := stepKey{tr.JobID, tr.Attempt, tr.FirstStep + k}
					if steps[key] {
						t.Fatalf("telemetry step %+v recorded twice", key)
					}
					steps[key] = true
				}
			}
			var job struct {
				JobID string `json:"job_id"`
			}
			_ = json.Unmarshal(r.Data, &job)
			switch bt := events.BaseType(r.Type); bt {
			case events.TypeRunRequested, events.TypeRunCompleted, events.TypeRunCancelled:
				if once[bt+job.JobID]++; once[bt+job.JobID] > 1 {
					t.Fatalf("%s occurs twice for job %q", bt, job.JobID)
				}
			}
		}
	}
}

func TestRunCompletes(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 0})
	acc := create(t, svc, `{"steps":35,"alarm_at":12}`)
	if acc.Status != "queued" || acc.RunID == "" || acc.JobID == "" {
		t.Fatalf("CreateRun = %+v, want queued with ids", acc)
	}
	st := waitStatus(t, store, acc.RunID, string(run.Completed))
	recs := readRun(t, store, acc.RunID)
	checkStream(t, recs)
	n := types(recs)
	if n[events.TypeTelemetryRecorded] != 4 { // 10+10+10+5
		t.Errorf("telemetry batches = %d, want 4", n[events.TypeTelemetryRecorded])
	}
	if n[events.TypeSPCViolation] != 1 || n[events.TypeArtifactStored] != 1 || n[events.TypeRunPhaseChanged] != 3 {
		t.Errorf("event counts = %v", n)
	}
	if st.Steps != 35 {
		t.Errorf("steps recorded = %d, want 35", st.Steps)
	}
	for _, r := range recs {
		if r.Metadata.OrgID != "org-1" || r.Metadata.UserID != "u-1" || r.Metadata.CorrelationID != "req-1" {
			t.Fatalf("%s metadata = %+v, want the creator's org, user and correlation", r.Type, r.Metadata)
		}
	}
}

func TestCreateRunRefusesInvalidRecipeAndAppendsNothing(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 0})
	_, err := svc.CreateRun(t.Context(), CreateRun{Kind: process.KindIon, Recipe: json.RawMessage(`{"steps":0}`), Meta: testMeta})
	var ve *process.ValidationError
	if !errors.As(err, &ve) || ve.Fields[0].Field != "steps" {
		t.Fatalf("CreateRun(steps 0) = %v, want a ValidationError on steps", err)
	}
	recs, err := store.ReadAll(t.Context(), 0, events.Filter{}, 0)
	if err != nil || len(recs) != 0 {
		t.Fatalf("ReadAll after refused create = %d records, %v; want none", len(recs), err)
	}
}

func TestCancelStopsWithinOnePeriod(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 20}) // 5 ms per step
	acc := create(t, svc, `{"steps":100000}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	time.Sleep(100 * time.Millisecond)
	res, err := svc.CancelRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta})
	if err != nil || res.Status != string(run.Cancelled) {
		t.Fatalf("CancelRun = %+v, %v; want cancelled", res, err)
	}
	time.Sleep(50 * time.Millisecond)
	recs := readRun(t, store, acc.RunID)
	checkStream(t, recs)
	last := recs[len(recs)-1]
	if events.BaseType(last.Type) != events.TypeRunCancelled {
		t.Fatalf("last event = %s, want RunCancelled (nothing after the cancel)", last.Type)
	}
	p, _ := events.Decode(last)
	c := p.(*events.RunCancelled)
	st := fold(t, store, acc.RunID)
	if c.Step != st.Steps || c.SafeState != "beam off" {
		t.Errorf("RunCancelled = %+v, want step %d (every step recorded) and the safe state", c, st.Steps)
	}
	if _, err := svc.CancelRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); !errors.Is(err, ErrInvalidState) {
		t.Errorf("second CancelRun = %v, want ErrInvalidState", err)
	}
	other := testMeta
	other.OrgID = "org-2"
	if _, err := svc.CancelRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: other}); !errors.Is(err, ErrNotFound) {
		t.Errorf("CancelRun from another org = %v, want ErrNotFound", err)
	}
	if _, err := svc.CancelRun(t.Context(), RunCommand{RunID: "ION-20260101-DEADBEEF", Meta: testMeta}); !errors.Is(err, ErrNotFound) {
		t.Errorf("CancelRun of unknown run = %v, want ErrNotFound", err)
	}
}

func TestPauseStopsProcessTime(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 20})
	acc := create(t, svc, `{"steps":200}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	time.Sleep(50 * time.Millisecond)
	if _, err := svc.PauseRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); err != nil {
		t.Fatalf("PauseRun: %v", err)
	}
	before := fold(t, store, acc.RunID).Steps
	time.Sleep(200 * time.Millisecond) // 40 steps' worth of wall time
	if after := fold(t, store, acc.RunID); after.Steps != before || string(after.State()) != string(run.Paused) {
		t.Fatalf("while paused steps went %d → %d (status %s), want no progress", before, after.Steps, string(after.State()))
	}
	if _, err := svc.PauseRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); !errors.Is(err, ErrInvalidState) {
		t.Errorf("PauseRun of a paused run = %v, want ErrInvalidState", err)
	}
	if _, err := svc.ResumeRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); err != nil {
		t.Fatalf("ResumeRun: %v", err)
	}
	waitStatus(t, store, acc.RunID, string(run.Completed))
	checkStream(t, readRun(t, store, acc.RunID))
}

func TestTransientFaultRetriesThenCompletes(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 0})
	acc := create(t, svc, `{"steps":30}`, func(c *CreateRun) {
		c.Fault = &process.Fault{Kind: process.FaultTransient, AtProgress: 50}
	})
	st := waitStatus(t, store, acc.RunID, string(run.Completed))
	if st.Status.RetryCount != 1 || st.Attempt() != 1 {
		t.Errorf("retry count %d, attempt %d; want 1, 1", st.Status.RetryCount, st.Attempt())
	}
	recs := readRun(t, store, acc.RunID)
	checkStream(t, recs)
	if n := types(recs); n[events.TypeRunRetryScheduled] != 1 || n[events.TypeRunStarted] != 2 {
		t.Errorf("event counts = %v, want one retry scheduled and two starts", n)
	}
}

func TestPermanentFaultFailsAndManualRetryCompletes(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 0})
	acc := create(t, svc, `{"steps":30}`, func(c *CreateRun) {
		c.Fault = &process.Fault{Kind: process.FaultPermanent, AtProgress: 50, Message: "analyzer magnet quench"}
	})
	waitStatus(t, store, acc.RunID, string(run.Failed))
	if _, err := svc.RetryJob(t.Context(), RunCommand{RunID: acc.RunID, JobID: "job-other", Meta: testMeta}); !errors.Is(err, ErrInvalidState) {
		t.Errorf("RetryJob of a job that is not the run's = %v, want ErrInvalidState", err)
	}
	res, err := svc.RetryJob(t.Context(), RunCommand{RunID: acc.RunID, JobID: acc.JobID, Meta: testMeta})
	if err != nil || res.JobID == acc.JobID {
		t.Fatalf("RetryJob = %+v, %v; want a new job", res, err)
	}
	// A manual retry stands for "after the repair": the injected fault is
	// not carried over, and the new job completes.
	st := waitStatus(t, store, acc.RunID, string(run.Completed))
	if st.JobID() != res.JobID {
		t.Errorf("completed job = %s, want the retry's %s", st.JobID(), res.JobID)
	}
	if _, err := svc.RetryJob(t.Context(), RunCommand{RunID: acc.RunID, Meta: testMeta}); !errors.Is(err, ErrInvalidState) {
		t.Errorf("RetryJob of a completed run = %v, want ErrInvalidState", err)
	}
}

func TestQueueLimitHoldsInTheLog(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 50, QueueLimit: 2})
	var ids []string
	for range 5 {
		ids = append(ids, create(t, svc, `{"steps":20}`).RunID)
	}
	for _, id := range ids {
		waitStatus(t, store, id, string(run.Completed))
	}
	recs, err := store.ReadAll(t.Context(), 0, events.Filter{Categories: []string{events.CategoryRun}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	running, peak := 0, 0
	for _, r := range recs {
		switch events.BaseType(r.Type) {
		case events.TypeRunStarted:
			running++
			peak = max(peak, running)
		case events.TypeRunCompleted, events.TypeRunFailed, events.TypeRunCancelled, events.TypeRunRetryScheduled:
			running--
		}
	}
	if peak != 2 {
		t.Errorf("peak concurrently running (from the log) = %d, want 2", peak)
	}
}

func TestPriorityOrdersAdmission(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 50, QueueLimit: 1})
	first := create(t, svc, `{"steps":20}`)
	waitStatus(t, store, first.RunID, string(run.Running))
	low := create(t, svc, `{"steps":5}`)
	high := create(t, svc, `{"steps":5}`, func(c *CreateRun) { c.Priority = 10 })
	time.Sleep(50 * time.Millisecond) // both queued behind the first
	waitStatus(t, store, low.RunID, string(run.Completed))
	lowStart := readRun(t, store, low.RunID)
	highStart := readRun(t, store, high.RunID)
	pos := func(recs []events.Record) uint64 {
		for _, r := range recs {
			if events.BaseType(r.Type) == events.TypeRunStarted {
				return r.Position
			}
		}
		return 0
	}
	if pos(highStart) == 0 || pos(highStart) > pos(lowStart) {
		t.Errorf("high-priority run started at %d, low at %d; want high first", pos(highStart), pos(lowStart))
	}
}

func TestRecoveryAfterStopContinuesWithoutDuplicates(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 20})
	acc := create(t, svc, `{"steps":120,"alarm_at":70}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	time.Sleep(150 * time.Millisecond)
	_ = svc.Close()
	before := fold(t, store, acc.RunID)
	if string(before.State()) != string(run.Running) || before.Steps == 0 || before.Steps >= 120 {
		t.Fatalf("before restart: status %s, steps %d; want mid-run", string(before.State()), before.Steps)
	}
	svc2 := newTestService(t, store, Config{TimeScale: 0})
	svc2.Wake(acc.RunID)
	waitStatus(t, store, acc.RunID, string(run.Completed))
	recs := readRun(t, store, acc.RunID)
	checkStream(t, recs)
	if n := types(recs); n[events.TypeSPCViolation] != 1 || n[events.TypeRunStarted] != 1 {
		t.Errorf("event counts = %v, want one alarm and one start across the restart", n)
	}
	// The re-simulated run equals an uninterrupted one with the same seed.
	var xs []float64
	for _, r := range recs {
		if p, _ := events.Decode(r); p != nil {
			if tr, ok := p.(*events.TelemetryRecorded); ok {
				xs = append(xs, tr.Samples["x"]...)
			}
		}
	}
	for i, x := range xs {
		if want := float64(before.Seed%1000) + float64(i); x != want {
			t.Fatalf("sample %d = %g, want %g (deterministic re-simulation)", i, x, want)
		}
	}
}

func TestSecondWriterIsFenced(t *testing.T) {
	store := memory.New()
	a := newTestService(t, store, Config{TimeScale: 20})
	acc := create(t, a, `{"steps":300}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	b := newTestService(t, store, Config{TimeScale: 20})
	b.Wake(acc.RunID) // a stale second actor for the same run
	deadline := time.Now().Add(10 * time.Second)
	for a.Fenced()+b.Fenced() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := a.Fenced() + b.Fenced(); got != 1 {
		t.Fatalf("fenced actors = %d, want exactly 1", got)
	}
	waitStatus(t, store, acc.RunID, string(run.Completed))
	checkStream(t, readRun(t, store, acc.RunID))
}

func TestIdempotencyKeyCreatesOneRun(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 0})
	key := func(c *CreateRun) { c.IdempotencyKey = "k-123" }
	a := create(t, svc, `{"steps":5}`, key)
	b := create(t, svc, `{"steps":5}`, key)
	if a.RunID != b.RunID || a.JobID != b.JobID {
		t.Fatalf("same key gave runs %s and %s", a.RunID, b.RunID)
	}
	other := func(c *CreateRun) { c.IdempotencyKey = "k-123"; c.Meta.OrgID = "org-2" }
	if c := create(t, svc, `{"steps":5}`, other); c.RunID == a.RunID {
		t.Fatalf("another org's same key returned the first org's run")
	}
	waitStatus(t, store, a.RunID, string(run.Completed))
	recs, _ := store.ReadAll(t.Context(), 0, events.Filter{Types: []string{events.TypeRunRequested}}, 0)
	if len(recs) != 2 {
		t.Errorf("RunRequested events = %d, want 2 (one per org)", len(recs))
	}
}

func TestTimeLimitsWarnThenAbort(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 0, SoftLimit: 2 * time.Second, HardLimit: 4 * time.Second})
	acc := create(t, svc, `{"steps":1000}`) // 100 s of process time
	waitStatus(t, store, acc.RunID, string(run.Failed))
	recs := readRun(t, store, acc.RunID)
	n := types(recs)
	if n[events.TypeRunTimeLimitWarning] != 1 {
		t.Errorf("soft-limit warnings = %d, want 1", n[events.TypeRunTimeLimitWarning])
	}
	p, _ := events.Decode(recs[len(recs)-1])
	f, ok := p.(*events.RunFailed)
	if !ok || f.Step != 40 || f.SafeState != "beam off" {
		t.Errorf("last event = %+v, want RunFailed at step 40 (4 s) with the safe state", p)
	}
}

// A first request that crashed after claiming its idempotency key but
// before recording the run: the retry records the run under the claimed id.
func TestIdempotentRetryFinishesAHalfRecordedCreate(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 0})
	claim, _ := events.New(&events.IdempotencyKeyClaimed{RunID: "ION-20261128-0000CAFE", JobID: "job-00000000cafe"}, testMeta)
	stream := "idem-" + strings.ReplaceAll(events.DeriveID(testMeta.OrgID, "k-crash"), "-", "")
	if _, err := store.Append(t.Context(), stream, events.ExpectNoStream, claim); err != nil {
		t.Fatal(err)
	}
	acc := create(t, svc, `{"steps":5}`, func(c *CreateRun) { c.IdempotencyKey = "k-crash" })
	if acc.RunID != "ION-20261128-0000CAFE" || acc.JobID != "job-00000000cafe" {
		t.Fatalf("CreateRun = %+v, want the claimed run and job", acc)
	}
	waitStatus(t, store, acc.RunID, string(run.Completed))
}

// A restart during a retry back-off waits out only what is left of it.
func TestRetryBackoffSurvivesARestart(t *testing.T) {
	store := memory.New()
	cfg := Config{TimeScale: 1, RetryBase: 4 * time.Second}
	svc := newTestService(t, store, cfg)
	acc := create(t, svc, `{"steps":20}`, func(c *CreateRun) {
		c.Fault = &process.Fault{Kind: process.FaultTransient, AtProgress: 30}
	})
	waitStatus(t, store, acc.RunID, string(run.Retrying))
	_ = svc.Close()
	time.Sleep(3 * time.Second)
	svc2 := newTestService(t, store, cfg)
	svc2.Wake(acc.RunID)
	st := waitStatus(t, store, acc.RunID, string(run.Running))
	var scheduled, restarted time.Time
	for _, r := range readRun(t, store, acc.RunID) {
		switch events.BaseType(r.Type) {
		case events.TypeRunRetryScheduled:
			scheduled = r.Time
		case events.TypeRunStarted:
			restarted = r.Time
		}
	}
	if gap := restarted.Sub(scheduled); st.Attempt() != 1 || gap < 4*time.Second || gap > 6500*time.Millisecond {
		t.Errorf("attempt %d started %v after its retry was scheduled, want the 4 s back-off once, not again after the restart", st.Attempt(), gap)
	}
}

func firstLen(cols map[string][]float64) int {
	for _, v := range cols {
		return len(v)
	}
	return 0
}

// The trace context of the request that caused a command reaches the
// events it appends.
func TestCommandEventsCarryTheRequestsTrace(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 20})
	acc := create(t, svc, `{"steps":400}`)
	waitStatus(t, store, acc.RunID, string(run.Running))
	md := testMeta
	md.TraceID, md.SpanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	if _, err := svc.PauseRun(t.Context(), RunCommand{RunID: acc.RunID, Meta: md}); err != nil {
		t.Fatal(err)
	}
	recs := readRun(t, store, acc.RunID)
	last := recs[len(recs)-1]
	if events.BaseType(last.Type) != events.TypeRunPaused || last.Metadata.TraceID != md.TraceID || last.Metadata.SpanID != md.SpanID {
		t.Fatalf("last event %s metadata %+v, want RunPaused with the request's trace", last.Type, last.Metadata)
	}
}
