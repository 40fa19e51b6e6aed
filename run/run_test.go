package run_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
	"github.com/spectra-fab/spectra/run"
)

var policy = run.Policy{MaxRetries: 2, RetryBase: time.Minute, RetryCap: 10 * time.Minute,
	SoftLimit: 5 * time.Second, HardLimit: 8 * time.Second}

var creator = events.Metadata{OrgID: "org-1", UserID: "eng-1", Role: "engineer"}

// given folds payloads into a fresh aggregate, as a host that appended
// them would.
func given(t *testing.T, ps ...events.Payload) *run.Run {
	t.Helper()
	r := run.New("ION-20261203-00000001", policy)
	apply(t, r, ps...)
	return r
}

func apply(t *testing.T, r *run.Run, ps ...events.Payload) {
	t.Helper()
	for _, p := range ps {
		ev, err := events.New(p, creator)
		if err != nil {
			t.Fatalf("events.New(%T): %v", p, err)
		}
		r.Apply(events.Record{ID: ev.ID, Stream: events.RunStream(r.ID), Revision: r.Revision + 1, Position: r.Position + 1,
			Type: ev.Type, Time: time.Unix(1000, 0).UTC(), Data: ev.Data, Metadata: ev.Metadata})
	}
}

func requested() *events.RunRequested {
	return &events.RunRequested{RunID: "ION-20261203-00000001", JobID: "job-1", Kind: process.KindIon,
		Recipe: json.RawMessage(`{"steps":25}`), Seed: 7, CreatedAt: time.Unix(900, 0).UTC()}
}

func started(attempt int) *events.RunStarted {
	return &events.RunStarted{JobID: "job-1", Attempt: attempt, Seed: 7}
}

// Histories that put a run in each state.
var histories = map[run.State][]events.Payload{
	run.Queued:    {requested(), &events.RunQueued{JobID: "job-1", Queue: "ion"}},
	run.Running:   {requested(), &events.RunQueued{JobID: "job-1", Queue: "ion"}, started(0)},
	run.Paused:    {requested(), started(0), &events.RunPaused{JobID: "job-1"}},
	run.Retrying:  {requested(), started(0), &events.RunRetryScheduled{JobID: "job-1", Attempt: 1, DelayS: 60, RetryCount: 1, Reason: "arc"}},
	run.Completed: {requested(), started(0), &events.RunCompleted{JobID: "job-1", Result: json.RawMessage(`{}`)}},
	run.Failed:    {requested(), started(0), &events.RunFailed{JobID: "job-1", Error: "interlock"}},
	run.Cancelled: {requested(), &events.RunCancelRequested{JobID: "job-1"}, &events.RunCancelled{JobID: "job-1", Reason: "x"}},
}

func typesOf(ps []events.Payload) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.EventType()
	}
	return out
}

// Every user command in every state: the events it causes, or the error.
func TestDecideCommandsInEveryState(t *testing.T) {
	type want struct {
		types []string
		err   error
	}
	ok := func(types ...string) want { return want{types: types} }
	refused := want{err: run.ErrInvalidState}
	table := map[string]map[run.State]want{
		"cancel": {
			run.Queued: ok(events.TypeRunCancelRequested, events.TypeRunCancelled), run.Running: ok(events.TypeRunCancelRequested, events.TypeRunCancelled),
			run.Paused: ok(events.TypeRunCancelRequested, events.TypeRunCancelled), run.Retrying: ok(events.TypeRunCancelRequested, events.TypeRunCancelled),
			run.Completed: refused, run.Failed: refused, run.Cancelled: refused,
		},
		"pause": {
			run.Running: ok(events.TypeRunPaused),
			run.Queued:  refused, run.Paused: refused, run.Retrying: refused, run.Completed: refused, run.Failed: refused, run.Cancelled: refused,
		},
		"resume": {
			run.Paused: ok(events.TypeRunResumed),
			run.Queued: refused, run.Running: refused, run.Retrying: refused, run.Completed: refused, run.Failed: refused, run.Cancelled: refused,
		},
		"retry": {
			run.Failed: ok(events.TypeRunRetried), run.Cancelled: ok(events.TypeRunRetried),
			run.Queued: refused, run.Running: refused, run.Paused: refused, run.Retrying: refused, run.Completed: refused,
		},
		"start": {
			run.Queued: ok(events.TypeRunStarted, events.TypeRunPhaseChanged), run.Retrying: ok(events.TypeRunStarted, events.TypeRunPhaseChanged),
			run.Running: refused, run.Paused: refused, run.Completed: refused, run.Failed: refused, run.Cancelled: refused,
		},
		"queue": {
			// RunQueued once per job; a queued job's is in its history.
			run.Queued: ok(), run.Running: ok(), run.Paused: ok(), run.Retrying: ok(), run.Completed: ok(), run.Failed: ok(), run.Cancelled: ok(),
		},
	}
	commands := map[string]any{
		"cancel": run.Cancel{By: "op-1"}, "pause": run.Pause{}, "resume": run.Resume{},
		"retry": run.Retry{JobID: "job-2", Seed: 8}, "queue": run.Queue{},
		"start": run.Start{Setup: []process.Mark{{Name: "Validation", Progress: 5}}},
	}
	for name, byState := range table {
		for _, st := range run.States {
			w, listed := byState[st]
			if !listed {
				t.Errorf("%s in state %s: not in the table", name, st)
				continue
			}
			t.Run(fmt.Sprintf("%s_when_%s", name, st), func(t *testing.T) {
				r := given(t, histories[st]...)
				if r.State() != st {
					t.Fatalf("given history: state %s, want %s", r.State(), st)
				}
				before := r.Revision
				got, err := r.Decide(commands[name])
				if w.err != nil {
					var se *run.StateError
					if !errors.Is(err, w.err) || !errors.As(err, &se) || se.Reason == "" {
						t.Fatalf("Decide(%s) = %v, %v; want a *StateError matching %v", name, typesOf(got), err, w.err)
					}
					return
				}
				if err != nil || !reflect.DeepEqual(typesOf(got), append([]string{}, w.types...)) {
					t.Fatalf("Decide(%s) = %v, %v; want %v", name, typesOf(got), err, w.types)
				}
				if r.Revision != before {
					t.Errorf("Decide changed the aggregate's revision")
				}
				apply(t, r, got...)
				if len(got) > 0 && r.State() == st && name != "start" && name != "queue" {
					t.Errorf("after %s the state is still %s", name, st)
				}
			})
		}
	}
}

func TestDecideOnAMissingRunIsNotFound(t *testing.T) {
	r := run.New("ION-20261203-FFFFFFFF", policy)
	if _, err := r.Decide(run.Pause{}); !errors.Is(err, run.ErrNotFound) || !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("Decide on a missing run = %v, want ErrNotFound (events.ErrNotFound)", err)
	}
}

func TestCancelDetails(t *testing.T) {
	r := given(t, histories[run.Queued]...)
	got, _ := r.Decide(run.Cancel{By: "op-1"})
	c := got[1].(*events.RunCancelled)
	if c.Reason != "cancelled by op-1" || c.SafeState == "" {
		t.Errorf("cancel of a queued run = %+v, want the default reason and the idle safe state", c)
	}
	apply(t, r, got...)
	if r.Status.E40 != run.E40Removed {
		t.Errorf("cancelled while queued: E40 %s, want %s", r.Status.E40, run.E40Removed)
	}
	// A recorded request is carried out, not asked again.
	r = given(t, requested(), started(0), &events.RunCancelRequested{JobID: "job-1", Reason: "wrong lot"})
	got, _ = r.Decide(run.CompleteCancel{SafeState: "beam off"})
	if len(got) != 1 || got[0].(*events.RunCancelled).Reason != "wrong lot" || r.CancelRequest == nil {
		t.Fatalf("CompleteCancel = %v, want one RunCancelled with the recorded reason", typesOf(got))
	}
	got, _ = r.Decide(run.Cancel{Reason: "again", SafeState: "beam off"})
	if !reflect.DeepEqual(typesOf(got), []string{events.TypeRunCancelled}) {
		t.Errorf("Cancel with a recorded request = %v, want only RunCancelled", typesOf(got))
	}
}

// stepper steps the test engine through the aggregate, applying what it
// decides, as a host would.
func stepper(t *testing.T, r *run.Run, recipe string, fault *process.Fault) process.Engine {
	t.Helper()
	opts := r.Options()
	opts.Fault = fault
	eng, err := processtest.Factory{}.New(json.RawMessage(recipe), opts)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func TestAdvanceBatchesTelemetryAndAlarms(t *testing.T) {
	r := given(t, histories[run.Running]...)
	eng := stepper(t, r, `{"steps":25,"alarm_at":12}`, nil)
	var all []events.Payload
	for !r.Done() {
		ps := r.Advance(eng.Step(), eng.SafeState())
		apply(t, r, ps...)
		all = append(all, ps...)
	}
	want := []string{events.TypeTelemetryRecorded, events.TypeTelemetryRecorded, events.TypeSPCViolation, events.TypeTelemetryRecorded}
	if !reflect.DeepEqual(typesOf(all), want) {
		t.Fatalf("events of 25 steps with an alarm at 12 = %v, want %v", typesOf(all), want)
	}
	if tr := all[3].(*events.TelemetryRecorded); tr.FirstStep != 20 || len(tr.Samples["x"]) != 5 {
		t.Errorf("last batch first_step %d, %d samples; want 20 and 5", tr.FirstStep, len(tr.Samples["x"]))
	}
	done, err := r.Decide(run.Complete{Finish: eng.FinishMarks(), Outcome: eng.Finish(),
		Artifacts: []events.ArtifactStored{{Name: "telemetry.json"}}})
	if err != nil || !reflect.DeepEqual(typesOf(done), []string{events.TypeRunPhaseChanged, events.TypeArtifactStored, events.TypeRunCompleted}) {
		t.Fatalf("Complete = %v, %v", typesOf(done), err)
	}
	apply(t, r, done...)
	if r.State() != run.Completed || r.Status.Progress != 100 {
		t.Errorf("after completion: %+v", r.Status)
	}
}

func TestAdvanceFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fault   process.FaultKind
		retries int // retries already used
		want    string
	}{
		{"transient_retries", process.FaultTransient, 0, events.TypeRunRetryScheduled},
		{"transient_out_of_retries_fails", process.FaultTransient, 2, events.TypeRunFailed},
		{"permanent_fails", process.FaultPermanent, 0, events.TypeRunFailed},
		{"interlock_fails", process.FaultInterlock, 0, events.TypeRunFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := []events.Payload{requested(), started(0)}
			for n := 1; n <= tc.retries; n++ {
				h = append(h, &events.RunRetryScheduled{JobID: "job-1", Attempt: n, RetryCount: n}, started(n))
			}
			r := given(t, h...)
			eng := stepper(t, r, `{"steps":100}`, &process.Fault{Kind: tc.fault, AtProgress: 50})
			var last []events.Payload
			for !r.Done() {
				last = r.Advance(eng.Step(), eng.SafeState())
				apply(t, r, last...)
			}
			if got := last[len(last)-1].EventType(); got != tc.want {
				t.Fatalf("fault ended with %s, want %s", got, tc.want)
			}
			if rs, ok := last[len(last)-1].(*events.RunRetryScheduled); ok {
				if rs.RetryCount != tc.retries+1 || rs.DelayS != 60 || r.State() != run.Retrying || r.NextAttempt() != tc.retries+1 {
					t.Errorf("retry = %+v, state %s", rs, r.State())
				}
			}
		})
	}
}

func TestAdvanceTimeLimits(t *testing.T) {
	r := given(t, histories[run.Running]...)
	eng := stepper(t, r, `{"steps":150}`, nil)
	var all []events.Payload
	for !r.Done() {
		ps := r.Advance(eng.Step(), eng.SafeState())
		apply(t, r, ps...)
		all = append(all, ps...)
	}
	n := map[string]int{}
	for _, p := range all {
		n[p.EventType()]++
	}
	if n[events.TypeRunTimeLimitWarning] != 1 || n[events.TypeRunFailed] != 1 || r.State() != run.Failed {
		t.Fatalf("a run past both limits: %v, state %s; want one warning and a failure", n, r.State())
	}
}

// A host that recovers by fast-forward re-steps what the log records and
// appends only what it lacks.
func TestAdvanceFastForwardRecordsOnlyWhatTheLogLacks(t *testing.T) {
	r := given(t, histories[run.Running]...)
	eng := stepper(t, r, `{"steps":40,"alarm_at":12}`, nil)
	var alarm events.Payload
	for r.StepsTaken() < 20 {
		for _, p := range r.Advance(eng.Step(), eng.SafeState()) {
			if _, ok := p.(*events.SPCViolation); ok {
				alarm = p // the host died before this one was appended
				continue
			}
			apply(t, r, p)
		}
	}
	if alarm == nil {
		t.Fatal("no alarm raised")
	}
	// A new host folds the log the first one left and fast-forwards.
	recovered := run.New(r.ID, policy)
	// Rebuild the log the first host left: its history and telemetry.
	var log []events.Payload
	log = append(log, histories[run.Running]...)
	eng2 := stepper(t, r, `{"steps":40,"alarm_at":12}`, nil)
	probe := given(t, histories[run.Running]...)
	for probe.StepsTaken() < 20 {
		for _, p := range probe.Advance(eng2.Step(), eng2.SafeState()) {
			if _, ok := p.(*events.SPCViolation); ok {
				continue
			}
			log = append(log, p)
			apply(t, probe, p)
		}
	}
	apply(t, recovered, log...)
	eng3 := stepper(t, recovered, `{"steps":40,"alarm_at":12}`, nil)
	var missing []events.Payload
	for !recovered.RecoveredTo() {
		missing = append(missing, recovered.Advance(eng3.Step(), eng3.SafeState())...)
	}
	if !reflect.DeepEqual(typesOf(missing), []string{events.TypeSPCViolation}) {
		t.Fatalf("fast-forward appends %v, want only the missing SPCViolation", typesOf(missing))
	}
	apply(t, recovered, missing...)
	// It goes on from step 20, not from 0.
	ps := recovered.Advance(eng3.Step(), eng3.SafeState())
	if len(ps) != 0 || recovered.StepsTaken() != 21 {
		t.Errorf("first live step after recovery: %v, steps %d", typesOf(ps), recovered.StepsTaken())
	}
}

func TestUnknownEventsAdvanceTheRevision(t *testing.T) {
	r := given(t, histories[run.Running]...)
	rev := r.Revision
	r.Apply(events.Record{Stream: events.RunStream(r.ID), Revision: rev + 1, Position: 99, Type: "RunHologramTaken.v3",
		Data: json.RawMessage(`{"job_id":"job-1"}`)})
	if r.Revision != rev+1 || r.Unknown != 1 || r.State() != run.Running {
		t.Fatalf("after an unknown event: revision %d (want %d), unknown %d, state %s", r.Revision, rev+1, r.Unknown, r.State())
	}
	if _, err := r.Decide(run.Pause{}); err != nil {
		t.Errorf("a run with an unknown event refuses commands: %v", err)
	}
}

// Random command sequences keep the invariants: nothing after a terminal
// event of a job but a retry, the retry count never decreases within a
// job, progress never decreases within an attempt, exactly one terminal
// event per finished job, and every state change an allowed one.
func TestPropertyRandomCommandSequences(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		r := given(t, requested())
		var eng process.Engine
		var log []events.Payload
		terminals := map[string]int{}
		for i := 0; i < 200; i++ {
			var ps []events.Payload
			var err error
			switch rng.IntN(9) {
			case 0, 1:
				// The host flushes before a cancel or pause.
				ps = r.Flush()
				var more []events.Payload
				if i%2 == 0 {
					more, err = r.Decide(run.Cancel{By: "op"})
				} else {
					more, err = r.Decide(run.Pause{})
				}
				ps = append(ps, more...)
			case 2:
				ps, err = r.Decide(run.Resume{})
			case 3:
				ps, err = r.Decide(run.Retry{JobID: fmt.Sprintf("job-r%d", i), Seed: int64(i)})
			case 4:
				ps, err = r.Decide(run.Queue{})
			case 5:
				ps, err = r.Decide(run.Start{})
				if err == nil {
					var f *process.Fault
					if rng.IntN(3) == 0 {
						f = &process.Fault{Kind: []process.FaultKind{process.FaultTransient, process.FaultPermanent}[rng.IntN(2)], AtProgress: 50}
					}
					opts := r.Options()
					opts.Attempt, opts.Fault = r.NextAttempt(), f
					eng, _ = processtest.Factory{}.New(json.RawMessage(`{"steps":30}`), opts)
				}
			default:
				if r.State() == run.Running && eng != nil {
					if r.Done() {
						ps, err = r.Decide(run.Complete{Outcome: eng.Finish()})
					} else {
						ps = r.Advance(eng.Step(), eng.SafeState())
					}
				}
			}
			if err != nil && !errors.Is(err, run.ErrInvalidState) {
				t.Fatalf("seed %d: unexpected error %v", seed, err)
			}
			for _, p := range ps {
				prev := r.Status
				apply(t, r, p)
				next := r.Status
				if prev.State != next.State && !prev.State.CanBecome(next.State) {
					t.Fatalf("seed %d: %s moved %s → %s, not an allowed transition", seed, p.EventType(), prev.State, next.State)
				}
				if prev.State.Terminal() && p.EventType() != events.TypeRunRetried {
					t.Fatalf("seed %d: %s after the job ended %s", seed, p.EventType(), prev.State)
				}
				if prev.JobID == next.JobID {
					if next.RetryCount < prev.RetryCount {
						t.Fatalf("seed %d: retry count fell %d → %d", seed, prev.RetryCount, next.RetryCount)
					}
					if prev.Attempt == next.Attempt && next.Progress < prev.Progress && p.EventType() != events.TypeRunStarted {
						t.Fatalf("seed %d: progress fell %.1f → %.1f on %s", seed, prev.Progress, next.Progress, p.EventType())
					}
				}
				if next.State.Terminal() {
					terminals[next.JobID]++
				}
				log = append(log, p)
			}
		}
		for job, n := range terminals {
			if n != 1 {
				t.Fatalf("seed %d: job %s has %d terminal events, want 1 (log %v)", seed, job, n, typesOf(log))
			}
		}
	}
}

// A paused run recovers too: its engine is fast-forwarded through the
// recorded steps (and no further) while it stays paused.
func TestAdvanceFastForwardsAPausedRun(t *testing.T) {
	r := given(t, histories[run.Running]...)
	eng := stepper(t, r, `{"steps":40}`, nil)
	for r.StepsTaken() < 20 {
		apply(t, r, r.Advance(eng.Step(), eng.SafeState())...)
	}
	apply(t, r, r.Flush()...)
	ps, err := r.Decide(run.Pause{})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, r, ps...)
	// A new host loads the paused run and fast-forwards.
	recovered := run.New(r.ID, policy)
	apply(t, recovered, append(append([]events.Payload{}, histories[run.Running]...), telemetryOf(t, r)...)...)
	apply(t, recovered, ps...)
	eng2 := stepper(t, recovered, `{"steps":40}`, nil)
	for i := 0; !recovered.RecoveredTo(); i++ {
		if i > 100 {
			t.Fatalf("fast-forward of a paused run never caught up: %d of %d steps", recovered.StepsTaken(), recovered.Steps)
		}
		if ps := recovered.Advance(eng2.Step(), eng2.SafeState()); len(ps) != 0 {
			t.Fatalf("fast-forward of a paused run appends %v", typesOf(ps))
		}
	}
	if got := recovered.Advance(eng2.Step(), eng2.SafeState()); got != nil || recovered.StepsTaken() != 20 {
		t.Errorf("a paused run stepped on live: %v, steps %d", typesOf(got), recovered.StepsTaken())
	}
}

// telemetryOf rebuilds the telemetry a run recorded, as its log holds it.
func telemetryOf(t *testing.T, r *run.Run) []events.Payload {
	t.Helper()
	probe := given(t, histories[run.Running]...)
	eng := stepper(t, probe, `{"steps":40}`, nil)
	var out []events.Payload
	for probe.StepsTaken() < r.Steps {
		ps := probe.Advance(eng.Step(), eng.SafeState())
		apply(t, probe, ps...)
		out = append(out, ps...)
	}
	return out
}

// A run failed by its hard limit records the telemetry stepped before it;
// a cancel of the failed run is refused for its state, and appends nothing.
func TestHardLimitFlushesThenRefusesCommands(t *testing.T) {
	r := given(t, histories[run.Running]...)
	eng := stepper(t, r, `{"steps":150}`, nil)
	var all []events.Payload
	for !r.Done() {
		ps := r.Advance(eng.Step(), eng.SafeState())
		apply(t, r, ps...)
		all = append(all, ps...)
	}
	last := all[len(all)-2].(*events.TelemetryRecorded)
	if n := last.FirstStep + len(last.Samples["x"]); n != r.StepsTaken() {
		t.Errorf("telemetry recorded to step %d, the run stepped %d before failing", n, r.StepsTaken())
	}
	if ps := r.Flush(); len(ps) != 0 {
		t.Errorf("Flush after the failure = %v, want nothing", typesOf(ps))
	}
	if _, err := r.Decide(run.Cancel{By: "op"}); !errors.Is(err, run.ErrInvalidState) {
		t.Errorf("cancel of a failed run = %v, want ErrInvalidState", err)
	}
}

// A job admitted as soon as it asked has no RunQueued yet: its Start
// records it, first, in the same append; once recorded, never again.
func TestStartRecordsRunQueuedOfAJobAdmittedAtOnce(t *testing.T) {
	start := run.Start{Setup: []process.Mark{{Name: "Validation", Progress: 5}}}
	for name, tc := range map[string]struct {
		given []events.Payload
		want  []string
	}{
		"requested_only":  {[]events.Payload{requested()}, []string{events.TypeRunQueued, events.TypeRunStarted, events.TypeRunPhaseChanged}},
		"queued_recorded": {histories[run.Queued], []string{events.TypeRunStarted, events.TypeRunPhaseChanged}},
		"retrying":        {histories[run.Retrying], []string{events.TypeRunStarted, events.TypeRunPhaseChanged}},
	} {
		t.Run(name, func(t *testing.T) {
			r := given(t, tc.given...)
			got, err := r.Decide(start)
			if err != nil || !reflect.DeepEqual(typesOf(got), tc.want) {
				t.Fatalf("Decide(Start) = %v, %v; want %v", typesOf(got), err, tc.want)
			}
			apply(t, r, got...)
			if r.State() != run.Running || !r.Queued && name != "retrying" {
				t.Errorf("after the start: state %s, queued %v; want running, queued", r.State(), r.Queued)
			}
			if q, _ := r.Decide(run.Queue{}); len(q) != 0 {
				t.Errorf("Decide(Queue) after the start = %v, want nothing", typesOf(q))
			}
		})
	}
}

// TestApplyPayloadFoldsAsApply: a host folding the payloads it just
// appended (ApplyPayload) ends where folding their records (Apply) does.
func TestApplyPayloadFoldsAsApply(t *testing.T) {
	decoded, given2 := run.New("ION-20261203-00000001", policy), run.New("ION-20261203-00000001", policy)
	fold := func(ps1, ps2 []events.Payload) {
		t.Helper()
		for i, p := range ps1 {
			ev, err := events.New(p, creator)
			if err != nil {
				t.Fatal(err)
			}
			rec := events.Record{ID: ev.ID, Stream: events.RunStream(decoded.ID), Revision: decoded.Revision + 1, Position: decoded.Position + 1,
				Type: ev.Type, Time: time.Unix(1000, 0).UTC(), Data: ev.Data, Metadata: ev.Metadata}
			decoded.Apply(rec)
			given2.ApplyPayload(rec, ps2[i])
		}
	}
	fold(histories[run.Running], histories[run.Running])
	eng1 := stepper(t, decoded, `{"steps":25,"alarm_at":12}`, nil)
	eng2 := stepper(t, given2, `{"steps":25,"alarm_at":12}`, nil)
	for !decoded.Done() {
		ps1, ps2 := decoded.Advance(eng1.Step(), eng1.SafeState()), given2.Advance(eng2.Step(), eng2.SafeState())
		if !reflect.DeepEqual(ps1, ps2) {
			t.Fatalf("Advance of equal engines = %v and %v", typesOf(ps1), typesOf(ps2))
		}
		fold(ps1, ps2)
		if !reflect.DeepEqual(decoded, given2) {
			t.Fatalf("after step %d: ApplyPayload = %+v, Apply = %+v", decoded.StepsTaken(), given2.Status, decoded.Status)
		}
	}
}
