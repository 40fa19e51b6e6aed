package api

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
	"github.com/spectra-fab/spectra/run"
)

// Types of stream messages: the seed's (§2.9) plus caught_up.
const (
	MessageConnected = "connected" // first message of every stream; no revision
	MessageProgress  = "progress"
	MessageTelemetry = "telemetry"
	MessageAlert     = "alert"
	MessageCompleted = "completed" // terminal
	MessageError     = "error"     // terminal
	MessageCancelled = "cancelled" // terminal
	MessageCaughtUp  = "caught_up" // the replay is over: what follows is live
)

// StreamMessage is one message of a WebSocket stream:
//
//	{"type":"telemetry","event":"TelemetryRecorded","run_id":"ION-…","timestamp":"…",
//	 "revision":12,"position":3456,"data":{…}}
//
// A message made from an event carries the event's stream revision and
// global position, and its base type name as event; a client that
// reconnects with from=revision+1 (or, on the organisation stream,
// from=position+1) resumes exactly after it. connected carries neither;
// caught_up carries those of the last event replayed, when there was one.
//
// Every run event maps to exactly one message, by its type alone:
//
//	RunRequested, RunQueued     progress  {status:"queued", progress:0, current_step:"Queued", …}
//	RunStarted                  progress  {status:"running", progress:0, current_step:"Started", attempt}
//	RunPhaseChanged             progress  {status:"running", progress, current_step:<step name>, step}
//	RunPaused / RunResumed      progress  {status:"paused" / "running", step}
//	RunCancelRequested          progress  {cancel_requested:true, reason} (no status: it changes none)
//	RunRetryScheduled           progress  {status:"retrying", current_step:"Retrying (attempt n)", attempt, delay_s, retry_count, reason}
//	RunRetried                  progress  {status:"queued", progress:0, current_step:"Queued", job_id:<new job>, from_job_id}
//	ArtifactStored              progress  {status:"running", artifact:{name, content_type, size, uri}}
//	TelemetryRecorded           telemetry {<field>:[10 samples]…, first_step, attempt, progress, current_step, status:"running"}
//	SPCViolation, FDCAlarm      alert     {parameter, message, severity, rule, source:"spc"|"fdc", value, time_s, step}
//	RunTimeLimitWarning         alert     {parameter:"process_time_s", message, severity:"warning", rule:"<limit>_time_limit", source:"time_limit", step}
//	RunCompleted                completed {<result fields: final_dose_atoms_cm2, vm_prediction, …>, status:"completed", progress:100, current_step:"Completed", process_time_s, artifacts}
//	RunFailed                   error     {error_message, status:"failed", safe_state, step}
//	RunCancelled                cancelled {message:"Run was cancelled", reason, status:"cancelled", safe_state, step}
//	any other type              progress  {} (event names it)
//
// The status fields (status, e40_state, progress, current_step,
// retry_count) are those run.TransitionOf gives the event, the one
// function the job-status model and the logs fold too; e40_state is absent
// for RunCancelled (it depends on the state before). Every data object also
// holds job_id when the event names a job. Only
// what an event says is in its message, so the same event always gives
// the same message, replayed or live; progress and current_step are absent
// where the event does not set them (a client keeps the last it saw). The
// one exception is completed's artifacts: the ArtifactStored events of the
// job that the session saw before it (seeded, when a run stream starts
// after them, from the read model).
type StreamMessage struct {
	Type      string    `json:"type"`
	Event     string    `json:"event,omitempty"`
	RunID     string    `json:"run_id,omitempty"`
	Timestamp time.Time `json:"timestamp"`
	Revision  *uint64   `json:"revision,omitempty"`
	Position  *uint64   `json:"position,omitempty"`
	Data      any       `json:"data"`
}

// Terminal reports whether the message ends a run's stream.
func (m StreamMessage) Terminal() bool {
	return m.Type == MessageCompleted || m.Type == MessageError || m.Type == MessageCancelled
}

func encodeMessage(m StreamMessage) ([]byte, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	return data, nil
}

// encodeFrame encodes m as one unfragmented, uncompressed WebSocket text
// frame from the server (RFC 6455 §5.2: no mask), ready to be written to
// any socket as it is: a live message is encoded once, not per socket.
// The streams' upgrader negotiates no compression, so every frame is
// plain.
func encodeFrame(m StreamMessage) ([]byte, error) {
	data, err := encodeMessage(m)
	if err != nil {
		return nil, err
	}
	return textFrame(data), nil
}

// textFrame frames payload as a final text frame.
func textFrame(payload []byte) []byte {
	n := len(payload)
	var f []byte
	switch {
	case n < 126:
		f = make([]byte, 2, 2+n)
		f[1] = byte(n)
	case n <= 0xFFFF:
		f = make([]byte, 4, 4+n)
		f[1] = 126
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		f = make([]byte, 10, 10+n)
		f[1] = 127
		binary.BigEndian.PutUint64(f[2:], uint64(n))
	}
	f[0] = 0x80 | websocket.TextMessage // FIN, text
	return append(f, payload...)
}

// streamArtifact is an artifact as completed lists it (as GET runs/{id}
// does).
type streamArtifact = projections.Artifact

// messageTypeOf is the type of the stream message a record of the event
// type base becomes (what newStreamMessage gives a record that decodes):
// a session's ?types= filter asks it before any message is built
// (TestMessageTypeOfMatchesNewStreamMessage).
func messageTypeOf(base string) string {
	switch base {
	case events.TypeTelemetryRecorded:
		return MessageTelemetry
	case events.TypeSPCViolation, events.TypeFDCAlarm, events.TypeRunTimeLimitWarning:
		return MessageAlert
	case events.TypeRunCompleted:
		return MessageCompleted
	case events.TypeRunFailed:
		return MessageError
	case events.TypeRunCancelled:
		return MessageCancelled
	}
	return MessageProgress
}

// newStreamMessage maps a run event to its message (see StreamMessage).
func newStreamMessage(rec events.Record) StreamMessage {
	rev, pos := rec.Revision, rec.Position
	m := StreamMessage{Type: MessageProgress, Event: events.BaseType(rec.Type), RunID: events.StreamID(rec.Stream),
		Timestamp: rec.Time.UTC(), Revision: &rev, Position: &pos}
	d := map[string]any{}
	m.Data = d
	p, err := events.Decode(rec)
	if err != nil {
		return m // a type this node does not know: an empty progress message naming it
	}
	switch e := p.(type) {
	case *events.RunRequested:
		d["job_id"], d["kind"] = e.JobID, e.Kind
		if e.ToolID != "" {
			d["tool_id"] = e.ToolID
		}
	case *events.RunQueued:
		d["job_id"], d["queue"] = e.JobID, e.Queue
	case *events.RunStarted:
		d["job_id"], d["attempt"] = e.JobID, e.Attempt
	case *events.RunPhaseChanged:
		d["job_id"], d["step"] = e.JobID, e.Step
	case *events.TelemetryRecorded:
		m.Type = MessageTelemetry
		for field, values := range e.Samples {
			d[field] = values
		}
		d["job_id"], d["attempt"], d["first_step"] = e.JobID, e.Attempt, e.FirstStep
	case *events.SPCViolation:
		m.Type = MessageAlert
		alert(d, e.JobID, e.Step, e.Alarm.Parameter, e.Alarm.Message, string(e.Alarm.Severity), e.Alarm.Rule, string(e.Alarm.Source))
		d["value"], d["time_s"] = e.Alarm.Value, e.Alarm.TimeS
	case *events.FDCAlarm:
		m.Type = MessageAlert
		alert(d, e.JobID, e.Step, e.Alarm.Parameter, e.Alarm.Message, string(e.Alarm.Severity), e.Alarm.Rule, string(e.Alarm.Source))
		d["value"], d["time_s"] = e.Alarm.Value, e.Alarm.TimeS
	case *events.RunTimeLimitWarning:
		m.Type = MessageAlert
		alert(d, e.JobID, e.Step, "process_time_s", e.Reason, "warning", e.Limit+"_time_limit", "time_limit")
	case *events.RunPaused:
		d["job_id"], d["step"] = e.JobID, e.Step
	case *events.RunResumed:
		d["job_id"], d["step"] = e.JobID, e.Step
	case *events.RunCancelRequested:
		d["cancel_requested"], d["job_id"] = true, e.JobID
		if e.Reason != "" {
			d["reason"] = e.Reason
		}
	case *events.RunRetryScheduled:
		d["job_id"], d["attempt"], d["delay_s"], d["retry_count"], d["reason"] = e.JobID, e.Attempt, e.DelayS, e.RetryCount, e.Reason
	case *events.RunRetried:
		d["job_id"], d["from_job_id"] = e.JobID, e.FromJobID
	case *events.ArtifactStored:
		d["job_id"] = e.JobID
		d["artifact"] = artifactOf(e)
	case *events.RunCompleted:
		m.Type = MessageCompleted
		var result map[string]json.RawMessage
		if json.Unmarshal(e.Result, &result) == nil {
			for k, v := range result {
				d[k] = v
			}
		}
		d["job_id"], d["process_time_s"], d["step"] = e.JobID, e.DurationS, e.Step
		d["artifacts"] = []streamArtifact{}
	case *events.RunFailed:
		m.Type = MessageError
		d["error_message"], d["job_id"], d["step"] = e.Error, e.JobID, e.Step
		if e.SafeState != "" {
			d["safe_state"] = e.SafeState
		}
	case *events.RunCancelled:
		m.Type = MessageCancelled
		d["message"], d["reason"] = "Run was cancelled", e.Reason
		d["job_id"], d["safe_state"], d["step"] = e.JobID, e.SafeState, e.Step
	}
	statusFields(d, p)
	return m
}

// statusFields puts what an event does to the run's status into its
// message: the same run.TransitionOf the job-status model and the logs
// fold, so a stream never disagrees with GET /api/jobs/{id}.
func statusFields(d map[string]any, p events.Payload) {
	t, _ := run.TransitionOf(p)
	if t.State != nil {
		d["status"] = string(*t.State)
	}
	if t.E40 != nil {
		d["e40_state"] = *t.E40
	}
	if t.Progress != nil {
		d["progress"] = *t.Progress
	}
	if t.CurrentStep != nil {
		d["current_step"] = *t.CurrentStep
	}
	if t.RetryCount != nil {
		d["retry_count"] = *t.RetryCount
	}
}

func alert(d map[string]any, jobID string, step int, parameter, message, severity, rule, source string) {
	d["job_id"], d["step"] = jobID, step
	d["parameter"], d["message"], d["severity"], d["rule"], d["source"] = parameter, message, severity, rule, source
}

func artifactOf(e *events.ArtifactStored) streamArtifact {
	return streamArtifact{Name: e.Name, ContentType: e.ContentType, Size: e.Size,
		URI: fmt.Sprintf("/api/jobs/%s/artifacts/%s", e.JobID, e.Name)}
}

// withArtifacts returns a completed message whose data lists arts. The
// shared data map is copied, never changed.
func withArtifacts(m StreamMessage, arts []streamArtifact) StreamMessage {
	src, _ := m.Data.(map[string]any)
	d := make(map[string]any, len(src))
	for k, v := range src {
		d[k] = v
	}
	if arts == nil {
		arts = []streamArtifact{}
	}
	d["artifacts"] = arts
	m.Data = d
	return m
}
