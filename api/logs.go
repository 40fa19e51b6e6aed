package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// mimeNDJSON asks for the log as JSON lines.
const mimeNDJSON = "application/x-ndjson"

// logLine is one line of a job's log as JSON.
type logLine struct {
	Time     time.Time       `json:"time"`
	Revision uint64          `json:"revision"`
	Position uint64          `json:"position"`
	Type     string          `json:"type"`
	Message  string          `json:"message"`
	UserID   string          `json:"user_id,omitempty"`
	Data     json.RawMessage `json:"data"`
}

// handleJobLogs renders the events of the job's run that concern the job
// (and those of the run as a whole) as timestamped text lines, or as JSON
// lines when the client accepts application/x-ndjson. The log is read from
// the event log itself, after checking that the job belongs to the caller's
// organisation.
func (s *Server) handleJobLogs(c *fiber.Ctx) error {
	job, err := s.lookupJob(c)
	if err != nil {
		return err
	}
	if s.store == nil {
		return &Error{Code: CodeUnavailable, Message: "logs are not available on this node"}
	}
	recs, err := s.store.ReadStream(c.UserContext(), events.RunStream(job.RunID), events.Forwards, 0, 0)
	if err != nil && !errors.Is(err, events.ErrNotFound) {
		return fmt.Errorf("read %s: %w", events.RunStream(job.RunID), err)
	}
	ndjson := strings.Contains(c.Get(fiber.HeaderAccept), mimeNDJSON)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, rec := range recs {
		if rec.Metadata.OrgID != "" && rec.Metadata.OrgID != job.OrgID {
			continue
		}
		if id := eventJobID(rec); id != "" && id != job.ID {
			continue
		}
		msg := describeEvent(rec)
		if ndjson {
			if err := enc.Encode(logLine{Time: rec.Time.UTC(), Revision: rec.Revision, Position: rec.Position,
				Type: events.BaseType(rec.Type), Message: msg, UserID: rec.Metadata.UserID, Data: rec.Data}); err != nil {
				return fmt.Errorf("encode log line: %w", err)
			}
			continue
		}
		fmt.Fprintf(&buf, "%s [%d] %s: %s\n", rec.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
			rec.Revision, events.BaseType(rec.Type), msg)
	}
	if ndjson {
		c.Set(fiber.HeaderContentType, mimeNDJSON)
	} else {
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	}
	return c.Send(buf.Bytes())
}

// eventJobID returns the job an event names, "" for a run-level one.
// RunRequested names the run's first job, but it belongs to every job of
// the run: it holds the recipe they all share.
func eventJobID(rec events.Record) string {
	if events.BaseType(rec.Type) == events.TypeRunRequested {
		return ""
	}
	var p struct {
		JobID string `json:"job_id"`
	}
	_ = json.Unmarshal(rec.Data, &p)
	return p.JobID
}

// describeEvent is the human text of an event in a job's log.
func describeEvent(rec events.Record) string {
	by := ""
	if rec.Metadata.UserID != "" {
		by = " by " + rec.Metadata.UserID
	}
	p, err := events.Decode(rec)
	if err != nil {
		return string(rec.Data)
	}
	switch e := p.(type) {
	case *events.RunRequested:
		s := fmt.Sprintf("%s run %s requested%s (job %s, priority %d", e.Kind, e.RunID, by, e.JobID, e.Priority)
		if e.ToolID != "" {
			s += ", tool " + e.ToolID
		}
		if e.Fault != nil {
			s += fmt.Sprintf(", simulated %s fault at %.0f%%", e.Fault.Kind, e.Fault.AtProgress)
		}
		return s + ")"
	case *events.RunQueued:
		return "queued in " + e.Queue
	case *events.RunStarted:
		s := fmt.Sprintf("attempt %d started (seed %d)", e.Attempt+1, e.Seed)
		if e.Node != "" {
			s += " on node " + e.Node
		}
		return s
	case *events.RunPhaseChanged:
		return fmt.Sprintf("%s (%.0f%%)", e.Name, e.Progress)
	case *events.TelemetryRecorded:
		n := 0
		for _, v := range e.Samples {
			n = max(n, len(v))
		}
		return fmt.Sprintf("%d telemetry samples, %s (%.1f%%)", n, e.CurrentStep, e.Progress)
	case *events.SPCViolation:
		return describeAlarm("SPC", e.Alarm)
	case *events.FDCAlarm:
		return describeAlarm("FDC", e.Alarm)
	case *events.RunPaused:
		return fmt.Sprintf("paused at step %d%s", e.Step, by)
	case *events.RunResumed:
		return fmt.Sprintf("resumed at step %d%s", e.Step, by)
	case *events.RunCancelRequested:
		return "cancellation requested" + by + withReason(e.Reason)
	case *events.RunCancelled:
		return fmt.Sprintf("cancelled at step %d%s; tool left %s", e.Step, withReason(e.Reason), e.SafeState)
	case *events.RunFailed:
		kind := "failed"
		if e.Transient {
			kind = "failed (transient)"
		}
		return fmt.Sprintf("%s at step %d: %s", kind, e.Step, e.Error)
	case *events.RunRetryScheduled:
		return fmt.Sprintf("retry %d scheduled in %.1f s%s", e.RetryCount, e.DelayS, withReason(e.Reason))
	case *events.RunRetried:
		return fmt.Sprintf("job %s retried as job %s%s", e.FromJobID, e.JobID, by)
	case *events.ArtifactStored:
		return fmt.Sprintf("artifact %s stored (%s, %d bytes)", e.Name, e.ContentType, e.Size)
	case *events.RunCompleted:
		return fmt.Sprintf("completed after %.1f s of process time", e.DurationS)
	case *events.RunTimeLimitWarning:
		return fmt.Sprintf("%s time limit passed at step %d%s", e.Limit, e.Step, withReason(e.Reason))
	}
	return string(rec.Data)
}

func describeAlarm(source string, a process.Alarm) string {
	return fmt.Sprintf("%s %s %s on %s = %g: %s", source, a.Severity, a.Rule, a.Parameter, a.Value, a.Message)
}

func withReason(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}
