package run

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// Report is what Verify found about a run's stream: whether re-simulating
// the run from its recorded inputs gives its log back event by event, and
// whether the stream's hash chain holds.
type Report struct {
	RunID string `json:"run_id"`
	// Identical: every event of the log was re-derived, bit for bit.
	Identical bool `json:"identical"`
	// Finished: the log ends with the run's job ended (completed, failed
	// or cancelled). An unfinished run verifies as far as it went.
	Finished bool   `json:"finished"`
	Status   string `json:"status"`
	// Events is the number of events in the log; Inputs how many of them
	// are inputs the replay takes from the log (the request, a manual
	// retry's seed, a cancel's reason, an artifact's URI…, see Verify);
	// Compared how many were re-derived and equal.
	Events   int `json:"events"`
	Inputs   int `json:"inputs"`
	Compared int `json:"compared"`
	// Recoveries counts the crash recoveries the log shows: a command
	// taken at a step the host had stepped before but not recorded. A
	// crash that left no such trace needs no recovery to re-derive.
	Recoveries int `json:"recoveries"`
	// Divergence is the first event that differs, nil when none does.
	Divergence *Divergence `json:"divergence,omitempty"`
	// Model compares the engine model the run recorded with the one the
	// replay used.
	Model ModelCheck `json:"model"`
	// Chain is the stream's hash chain check (events.CheckChain).
	Chain events.ChainReport `json:"chain"`
	// Policy is the retry and time-limit policy the replay ran the run
	// under: the one its RunStarted recorded, or for an older log the
	// assumed one (run.DefaultPolicy).
	Policy PolicyUsed `json:"policy"`
}

// PolicyUsed is a run policy and whether the run's log recorded it.
type PolicyUsed struct {
	events.RunPolicy
	Recorded bool `json:"recorded"`
}

// ModelCheck compares the model versions of a run's attempts with the
// model of the engine that re-simulated it.
type ModelCheck struct {
	Recorded []string `json:"recorded"` // per attempt, "" when the log predates model versions
	Current  string   `json:"current"`
	// Same is true when every attempt recorded the current model's
	// fingerprint. A replay with another model may still be identical (the
	// change did not touch this run) or diverge: Note says which.
	Same bool   `json:"same"`
	Note string `json:"note,omitempty"`
}

// Divergence is the first event where the replay and the log differ.
type Divergence struct {
	// Revision is the stream revision of the recorded event (or the one
	// that would follow the log's last when the log lacks an event).
	Revision uint64 `json:"revision"`
	Reason   string `json:"reason"`
	// Recorded and Replayed are the two versions; one is nil when an
	// event is missing from one side.
	Recorded *EventView `json:"recorded,omitempty"`
	Replayed *EventView `json:"replayed,omitempty"`
}

// EventView is one event's type and data.
type EventView struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Verify re-simulates a run from the records of its stream (in revision
// order) and compares what it derives with the log, event by event; it
// also checks the stream's hash chain (pub, when not nil, verifies the
// seals' signatures).
//
// The replay drives a fresh Run through the decisions its host took:
// Start for each RunStarted (with a fresh engine from newEngine, the
// recorded seed and R2R adjustments), Advance for every step, Pause,
// Resume and Cancel at the steps the log records them, Retry for a manual
// retry, Complete when the engine is done. What the host chose rather
// than computed is taken from the log: the request itself, the R2R
// adjustments and their basis read at start, the node, the step and
// reason of each command, a manual retry's job id and seed, the URIs of
// stored artifacts, and errors the host met (a RunFailed outside a step).
// Everything else (telemetry, alarms, faults, retries, time limits, marks,
// results, observations, safe states) must come out identical, byte for
// byte. The retry and time-limit policy is the one the run's RunStarted
// records; p is assumed for a log that records none (run.DefaultPolicy
// for runs of Spectra's defaults); model is the model version of newEngine's engines (ModelVersion
// for the real ones).
func Verify(runID string, recs []events.Record, newEngine NewEngine, p Policy, model string, pub ed25519.PublicKey) Report {
	rep := Replay(runID, recs, newEngine, p)
	rep.Chain = events.CheckChain(recs, pub)
	rep.Model.Current = model
	rep.Model.Same = len(rep.Model.Recorded) > 0
	for _, m := range rep.Model.Recorded {
		if m == "" || !SameModel(m, model) {
			rep.Model.Same = false
		}
	}
	switch {
	case rep.Model.Same:
	case len(rep.Model.Recorded) == 0:
		rep.Model.Note = "the run never started an engine"
	case model == "":
		rep.Model.Note = "the model version of the engine used is unknown"
	case rep.Identical:
		rep.Model.Note = "the engine's model differs from the one the run recorded (or the run predates model versions), but it re-derives this run identically"
	default:
		rep.Model.Note = "the engine's model differs from the one the run recorded (or the run predates model versions): the divergence may come from the model change"
	}
	return rep
}

// Replay re-simulates a run from its records and compares, as Verify
// does, without the chain and model checks.
func Replay(runID string, recs []events.Record, newEngine NewEngine, p Policy) Report {
	rp := &replayer{recs: recs, r: New(runID, p), newEngine: newEngine}
	rp.rep = Report{RunID: runID, Events: len(recs), Model: ModelCheck{Recorded: []string{}}}
	rp.run()
	rp.rep.Identical = rp.rep.Divergence == nil
	rp.rep.Status = string(rp.r.State())
	rp.rep.Finished = rp.r.State().Terminal()
	return rp.rep
}

type replayer struct {
	recs      []events.Record
	i         int // the next record to compare
	r         *Run
	eng       process.Engine
	newEngine NewEngine
	rep       Report
	ended     bool // the log ended between two decisions
}

func (rp *replayer) diverge(reason string, replayed events.Payload) {
	d := &Divergence{Reason: reason, Revision: rp.r.Revision + 1}
	if rp.i < len(rp.recs) {
		rec := rp.recs[rp.i]
		d.Revision = rec.Revision
		d.Recorded = &EventView{Type: events.BaseType(rec.Type), Data: rec.Data}
	}
	if replayed != nil {
		data, err := json.Marshal(replayed)
		if err != nil {
			data = json.RawMessage(fmt.Sprintf("%q", err.Error()))
		}
		d.Replayed = &EventView{Type: replayed.EventType(), Data: data}
	}
	rp.rep.Divergence = d
}

func (rp *replayer) stopped() bool { return rp.rep.Divergence != nil || rp.ended }

// take applies the next record as an input of the replay.
func (rp *replayer) take() {
	rp.r.Apply(rp.recs[rp.i])
	rp.i++
	rp.rep.Inputs++
}

// expect compares what a decision produced with the next records and
// applies the recorded ones. A log that ends before the decision's first
// event ends the replay; one that ends within it diverges (an append is
// atomic).
func (rp *replayer) expect(ps []events.Payload, err error) {
	if err != nil {
		rp.diverge(fmt.Sprintf("the replay's run refuses the decision: %v", err), nil)
		return
	}
	for k, p := range ps {
		if rp.i >= len(rp.recs) {
			if k == 0 {
				rp.ended = true
				return
			}
			rp.diverge("the log ends inside a decision's events", p)
			return
		}
		rec := rp.recs[rp.i]
		data, err := json.Marshal(p)
		if err != nil {
			rp.diverge(fmt.Sprintf("encode the replayed %s: %v", p.EventType(), err), nil)
			return
		}
		if events.BaseType(rec.Type) != p.EventType() {
			rp.diverge(fmt.Sprintf("the log records %s where the replay derives %s", events.BaseType(rec.Type), p.EventType()), p)
			return
		}
		if !bytes.Equal(stored(rec), data) {
			rp.diverge(fmt.Sprintf("%s differs from the replay's", p.EventType()), p)
			return
		}
		rp.r.Apply(rec)
		rp.i++
		rp.rep.Compared++
	}
	rp.react()
}

// stored is a record's data at the current schema version: as stored, or
// upcast and re-encoded when the log holds an older version.
func stored(rec events.Record) []byte {
	if rec.Type == events.VersionedType(events.BaseType(rec.Type)) {
		return rec.Data
	}
	p, err := events.Decode(rec)
	if err != nil {
		return rec.Data
	}
	b, err := json.Marshal(p)
	if err != nil {
		return rec.Data
	}
	return b
}

// react drops the engine when the attempt ends, as the host does.
func (rp *replayer) react() {
	switch rp.r.State() {
	case Retrying, Completed, Failed, Cancelled:
		rp.eng = nil
	}
}

func (rp *replayer) run() {
	if len(rp.recs) == 0 {
		rp.diverge("the run's stream is empty", nil)
		return
	}
	if events.BaseType(rp.recs[0].Type) != events.TypeRunRequested {
		rp.diverge("the stream does not begin with RunRequested", nil)
		return
	}
	rp.take()
	for rp.i < len(rp.recs) && !rp.stopped() {
		st := rp.r.State()
		if st == Running && rp.eng != nil {
			if rp.r.Done() {
				rp.finish()
				continue
			}
			if c, ok := rp.command(); ok {
				switch {
				case c.step == rp.r.StepsTaken():
					rp.stop(c)
					continue
				case c.step < rp.r.StepsTaken() && c.step >= rp.r.Steps:
					// The host took the command at a step the replay has
					// passed without recording it: the host crashed and
					// lost those steps (a recorded time-limit warning
					// shows it). Recover as its successor did.
					rp.recover()
					continue
				}
			}
			rp.expect(rp.r.Advance(rp.eng.Step(), rp.eng.SafeState()), nil)
			continue
		}
		rec := rp.recs[rp.i]
		switch events.BaseType(rec.Type) {
		case events.TypeRunQueued:
			rp.expect(rp.r.Decide(Queue{}))
		case events.TypeRunStarted:
			rp.start(rec)
		case events.TypeRunResumed:
			rp.expect(rp.r.Decide(Resume{}))
		case events.TypeRunCancelRequested, events.TypeRunCancelled:
			c, _ := rp.command()
			rp.expect(rp.r.Decide(Cancel{Reason: c.reason, SafeState: rp.safeState()}))
		case events.TypeRunRetried:
			var e events.RunRetried
			if !rp.decode(rec, &e) {
				return
			}
			rp.expect(rp.r.Decide(Retry{JobID: e.JobID, Seed: e.Seed}))
		case events.TypeRunFailed:
			// An error the host met (its engine could not be built or
			// recovered): an input.
			var e events.RunFailed
			if !rp.decode(rec, &e) {
				return
			}
			rp.expect(rp.r.Decide(Fail{Error: e.Error, SafeState: e.SafeState}))
		default:
			rp.diverge(fmt.Sprintf("the log records %s while the run is %s; the replay derives no event here",
				events.BaseType(rec.Type), st), nil)
		}
	}
}

func (rp *replayer) decode(rec events.Record, v any) bool {
	if err := json.Unmarshal(rec.Data, v); err != nil {
		rp.diverge(fmt.Sprintf("decode %s: %v", rec.Type, err), nil)
		return false
	}
	return true
}

func (rp *replayer) safeState() string {
	if rp.eng == nil {
		return ""
	}
	return rp.eng.SafeState()
}

// start re-creates the attempt's engine from the recorded inputs and
// derives the RunStarted and set-up marks.
func (rp *replayer) start(rec events.Record) {
	var e events.RunStarted
	if !rp.decode(rec, &e) {
		return
	}
	// The basis is an input: keep its numbers as written.
	var basis struct {
		R2RBasis map[string]any `json:"r2r_basis"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Data))
	dec.UseNumber()
	if err := dec.Decode(&basis); err != nil {
		rp.diverge(fmt.Sprintf("decode %s: %v", rec.Type, err), nil)
		return
	}
	rp.rep.Model.Recorded = append(rp.rep.Model.Recorded, e.Model)
	// The policy the run recorded governs the replay (an input: the host
	// chose it); a log that predates recorded policies ran under the
	// assumed one.
	if e.Policy != nil {
		rp.r.Policy = PolicyOf(*e.Policy)
	}
	rp.rep.Policy = PolicyUsed{RunPolicy: *rp.r.Policy.Record(), Recorded: e.Policy != nil}
	opts := rp.r.Options()
	opts.Attempt, opts.R2R = rp.r.NextAttempt(), e.R2R
	eng, err := rp.newEngine(rp.r.Request.Kind, rp.r.Request.Recipe, opts)
	if err != nil {
		rp.diverge(fmt.Sprintf("the replay cannot build the engine: %v", err), nil)
		return
	}
	ps, err := rp.r.Decide(Start{R2R: e.R2R, R2RBasis: basis.R2RBasis, Node: e.Node, Model: e.Model, Setup: eng.SetupMarks()})
	if len(ps) > 0 && e.Policy == nil {
		if st, ok := ps[0].(*events.RunStarted); ok {
			st.Policy = nil // as an older host recorded it
		}
	}
	rp.expect(ps, err)
	if !rp.stopped() {
		rp.eng = eng
	}
}

// recover re-folds the records compared so far into a fresh aggregate and
// fast-forwards a fresh engine through the recorded steps, as a run actor
// re-activated after a crash does; it expects what that appends.
func (rp *replayer) recover() {
	r := New(rp.r.ID, rp.r.Policy)
	for _, rec := range rp.recs[:rp.i] {
		r.Apply(rec)
	}
	eng, err := rp.newEngine(r.Request.Kind, r.Request.Recipe, r.Options())
	if err != nil {
		rp.diverge(fmt.Sprintf("the replay cannot rebuild the engine: %v", err), nil)
		return
	}
	var missing []events.Payload
	for !r.RecoveredTo() && !r.Done() {
		missing = append(missing, r.Advance(eng.Step(), eng.SafeState())...)
	}
	rp.r, rp.eng = r, eng
	rp.rep.Recoveries++
	rp.expect(missing, nil)
}

// cmd is a command the log records: what and at which step.
type cmd struct {
	typ    string
	step   int
	reason string
}

// command looks past the telemetry and alarms ahead for a pause or a
// cancel, and returns it with its step.
func (rp *replayer) command() (cmd, bool) {
	j := rp.i
	for j < len(rp.recs) {
		switch events.BaseType(rp.recs[j].Type) {
		case events.TypeTelemetryRecorded, events.TypeSPCViolation, events.TypeFDCAlarm:
			j++
			continue
		}
		break
	}
	if j >= len(rp.recs) {
		return cmd{}, false
	}
	rec := rp.recs[j]
	c := cmd{typ: events.BaseType(rec.Type)}
	switch c.typ {
	case events.TypeRunPaused:
		var e events.RunPaused
		if json.Unmarshal(rec.Data, &e) != nil {
			return cmd{}, false
		}
		c.step = e.Step
	case events.TypeRunCancelRequested:
		var e events.RunCancelRequested
		if json.Unmarshal(rec.Data, &e) != nil {
			return cmd{}, false
		}
		c.reason = e.Reason
		if j+1 < len(rp.recs) && events.BaseType(rp.recs[j+1].Type) == events.TypeRunCancelled {
			var done events.RunCancelled
			if json.Unmarshal(rp.recs[j+1].Data, &done) != nil {
				return cmd{}, false
			}
			c.step = done.Step
		} else {
			c.step = rp.r.StepsTaken()
		}
	case events.TypeRunCancelled:
		var e events.RunCancelled
		if json.Unmarshal(rec.Data, &e) != nil {
			return cmd{}, false
		}
		c.step, c.reason = e.Step, e.Reason
	default:
		return cmd{}, false
	}
	return c, true
}

// stop carries out a pause or a cancel at the step the log records it:
// the host flushes what it stepped, then decides.
func (rp *replayer) stop(c cmd) {
	rp.expect(rp.r.Flush(), nil)
	if rp.stopped() {
		return
	}
	switch c.typ {
	case events.TypeRunPaused:
		rp.expect(rp.r.Decide(Pause{}))
	default:
		rp.expect(rp.r.Decide(Cancel{Reason: c.reason, SafeState: rp.safeState()}))
	}
}

// finish derives the completion: finishing marks, stored artifacts (with
// the URIs the log records) and the result.
func (rp *replayer) finish() {
	marks := rp.eng.FinishMarks()
	out := rp.eng.Finish()
	var stored []events.ArtifactStored
	for _, art := range out.Artifacts {
		if rp.r.Artifacts[art.Name] {
			continue
		}
		stored = append(stored, events.ArtifactStored{Name: art.Name, ContentType: art.ContentType,
			Size: len(art.Data), URI: rp.artifactURI(art.Name)})
	}
	rp.expect(rp.r.Decide(Complete{Finish: marks, Artifacts: stored, Outcome: out}))
}

func (rp *replayer) artifactURI(name string) string {
	for _, rec := range rp.recs[rp.i:] {
		if events.BaseType(rec.Type) != events.TypeArtifactStored {
			continue
		}
		var e events.ArtifactStored
		if json.Unmarshal(rec.Data, &e) == nil && e.Name == name {
			return e.URI
		}
	}
	return ""
}
