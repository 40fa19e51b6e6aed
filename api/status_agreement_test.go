package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
	"github.com/spectra-fab/spectra/run"
)

// A life of a run that passes through every run event type: queued,
// started, a phase, telemetry, alarms, a time-limit warning, pause and
// resume, a transient fault and its retry, artifacts, completion; then a
// second run cancelled, retried by hand, failed.
func runLife() []events.Payload {
	req := &events.RunRequested{RunID: "ION-20261203-0000A11E", JobID: "job-1", Kind: process.KindIon,
		Recipe: json.RawMessage(`{}`), CreatedAt: time.Unix(1, 0).UTC()}
	alarm := process.Alarm{Source: process.SourceSPC, Parameter: "beam_current_ma", Rule: "WE1"}
	return []events.Payload{
		req,
		&events.RunQueued{JobID: "job-1", Queue: "ion"},
		&events.RunStarted{JobID: "job-1", Attempt: 0},
		&events.RunPhaseChanged{JobID: "job-1", Name: "Validation", Progress: 5},
		&events.TelemetryRecorded{JobID: "job-1", Samples: map[string][]float64{"x": {1}}, Progress: 22.5, CurrentStep: "Implanting (4% dose)"},
		&events.SPCViolation{JobID: "job-1", Step: 3, Alarm: alarm},
		&events.FDCAlarm{JobID: "job-1", Step: 4, Alarm: alarm},
		&events.RunTimeLimitWarning{JobID: "job-1", Limit: "soft", Step: 5},
		&events.RunPaused{JobID: "job-1", Step: 5},
		&events.RunResumed{JobID: "job-1", Step: 5},
		&events.RunRetryScheduled{JobID: "job-1", Attempt: 1, DelayS: 60, RetryCount: 1, Reason: "arc"},
		&events.RunStarted{JobID: "job-1", Attempt: 1},
		&events.TelemetryRecorded{JobID: "job-1", Attempt: 1, Samples: map[string][]float64{"x": {1}}, Progress: 50, CurrentStep: "Implanting (50% dose)"},
		&events.RunPhaseChanged{JobID: "job-1", Name: "Final checks", Progress: 85, Step: 40},
		&events.ArtifactStored{JobID: "job-1", Name: "telemetry.json", ContentType: "application/json", Size: 2},
		&events.RunCompleted{JobID: "job-1", Result: json.RawMessage(`{"final_dose_atoms_cm2":1e15}`)},
		&events.RunRetried{JobID: "job-2", FromJobID: "job-1"},
		&events.RunQueued{JobID: "job-2", Queue: "ion"},
		&events.RunCancelRequested{JobID: "job-2", Reason: "wrong lot"},
		&events.RunCancelled{JobID: "job-2", Reason: "wrong lot", SafeState: "idle"},
		&events.RunRetried{JobID: "job-3", FromJobID: "job-2"},
		&events.RunStarted{JobID: "job-3"},
		&events.RunFailed{JobID: "job-3", Error: "interlock"},
	}
}

// The job-status model, the stream messages and the job logs show the
// same status after every event, because each derives it from
// run.TransitionOf; and every run event type of the catalogue (registered
// with registerRun) has one.
func TestStatusAgreesEverywhere(t *testing.T) {
	life := runLife()
	seen := map[string]bool{}
	for _, p := range life {
		seen[p.EventType()] = true
	}
	for _, typ := range events.RunTypes() {
		p, _ := events.NewPayload(typ)
		if _, ok := run.TransitionOf(p); !ok {
			t.Errorf("run.TransitionOf(%s): not handled; every run event type needs a status transition", typ)
		}
		if !seen[typ] {
			t.Errorf("runLife has no %s: add it so the readers are compared on it", typ)
		}
	}

	model := projections.NewJobStatus()
	var folded run.Status
	streamed := map[string]any{}
	logged := map[string]any{}
	const runID = "ION-20261203-0000A11E"
	for i, p := range life {
		ev, err := events.New(p, events.Metadata{OrgID: "org-1", UserID: "eng-1"})
		if err != nil {
			t.Fatal(err)
		}
		rec := events.Record{ID: ev.ID, Stream: events.RunStream(runID), Revision: uint64(i), Position: uint64(i + 1),
			Type: ev.Type, Time: time.Unix(int64(10+i), 0).UTC(), Data: ev.Data, Metadata: ev.Metadata}
		if err := model.Apply(rec); err != nil {
			t.Fatalf("JobStatus.Apply(%s) = %v", p.EventType(), err)
		}
		folded = folded.Next(p)
		msg := newStreamMessage(rec)
		for _, k := range []string{"status", "progress", "current_step", "retry_count", "e40_state"} {
			if v, ok := msg.Data.(map[string]any)[k]; ok {
				streamed[k] = v
			}
		}
		line := logLineOf(rec, "")
		if line.Status != "" {
			logged["status"] = line.Status
		}
		if line.Progress != nil {
			logged["progress"] = *line.Progress
		}
		if line.CurrentStep != "" {
			logged["current_step"] = line.CurrentStep
		}
		view, err := model.Run(t.Context(), "org-1", runID)
		if err != nil {
			t.Fatalf("after %s: %v", p.EventType(), err)
		}
		want := map[string]any{"status": string(folded.State), "progress": folded.Progress, "current_step": folded.CurrentStep}
		got := map[string]map[string]any{
			"job-status model": {"status": view.Status, "progress": view.Progress, "current_step": view.CurrentStep},
			"stream messages":  {"status": streamed["status"], "progress": streamed["progress"], "current_step": streamed["current_step"]},
			"job log":          {"status": logged["status"], "progress": logged["progress"], "current_step": logged["current_step"]},
		}
		for reader, g := range got {
			for k, w := range want {
				if g[k] != w {
					t.Errorf("after event %d %s: %s shows %s = %v, the fold %v", i, p.EventType(), reader, k, g[k], w)
				}
			}
		}
		if view.E40State != folded.E40 || view.RetryCount != folded.RetryCount || view.ErrorMessage != folded.Message {
			t.Errorf("after %s: model E40 %q retries %d message %q; fold %q %d %q", p.EventType(),
				view.E40State, view.RetryCount, view.ErrorMessage, folded.E40, folded.RetryCount, folded.Message)
		}
		if e40, ok := streamed["e40_state"]; ok && p.EventType() != events.TypeRunCancelled && e40 != folded.E40 {
			t.Errorf("after %s: stream e40_state %v, fold %v", p.EventType(), e40, folded.E40)
		}
	}
}

// TestMessageTypeOfMatchesNewStreamMessage: the type a ?types= filter
// reads from an event type alone is the type of the message the event
// becomes, for every type of the catalogue.
func TestMessageTypeOfMatchesNewStreamMessage(t *testing.T) {
	for _, base := range events.Types() {
		p, _ := events.NewPayload(base)
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		rec := events.Record{Stream: events.RunStream("ION-20260101-0000C001"), Type: events.VersionedType(base), Data: data}
		if got, want := messageTypeOf(base), newStreamMessage(rec).Type; got != want {
			t.Errorf("%s: messageTypeOf = %q, the message is %q", base, got, want)
		}
	}
}
