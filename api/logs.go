package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// mimeNDJSON asks for the log as JSON lines.
const mimeNDJSON = "application/x-ndjson"

// logLine is one line of a job's log as JSON.
type logLine struct {
	Time     time.Time `json:"time"`
	Revision uint64    `json:"revision"`
	Position uint64    `json:"position"`
	Type     string    `json:"type"`
	Message  string    `json:"message"`
	UserID   string    `json:"user_id,omitempty"`
	// Status, Progress and CurrentStep are what the event does to the
	// run's status (run.TransitionOf, as the job view and the stream
	// fold it); absent when it changes none.
	Status      string          `json:"status,omitempty"`
	Progress    *float64        `json:"progress,omitempty"`
	CurrentStep string          `json:"current_step,omitempty"`
	Data        json.RawMessage `json:"data"`
}

// Job logs are read a page at a time: ?from=<revision> (default 0) and
// ?limit=<events> (default and maximum logPageMax). When the stream holds
// more, X-Next-From names the revision the next page starts at.
const logPageMax = 2000

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
	from, limit, err := logPage(c)
	if err != nil {
		return err
	}
	recs, err := s.store.ReadStream(c.UserContext(), events.RunStream(job.RunID), events.Forwards, from, limit+1)
	if err != nil && !errors.Is(err, events.ErrNotFound) {
		return fmt.Errorf("read %s: %w", events.RunStream(job.RunID), err)
	}
	if len(recs) > limit {
		c.Set("X-Next-From", strconv.FormatUint(recs[limit].Revision, 10))
		recs = recs[:limit]
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
			line := logLineOf(rec, msg)
			if err := enc.Encode(line); err != nil {
				return fmt.Errorf("encode log line: %w", err)
			}
			continue
		}
		// Free text is data: a newline or control character in it (a
		// tool id, a reason) is escaped, so no line can forge another.
		fmt.Fprintf(&buf, "%s [%d] %s: %s\n", rec.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
			rec.Revision, events.BaseType(rec.Type), escapeText(msg))
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

// logPage reads ?from= and ?limit= of a log request.
func logPage(c *fiber.Ctx) (from uint64, limit int, err error) {
	limit = logPageMax
	if v := c.Query("from"); v != "" {
		if from, err = strconv.ParseUint(v, 10, 64); err != nil {
			ve := &process.ValidationError{}
			ve.Add("from", v, "a stream revision, 0 or more", "not a revision")
			return 0, 0, ve
		}
	}
	if v := c.Query("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > logPageMax {
			ve := &process.ValidationError{}
			ve.Add("limit", v, fmt.Sprintf("1–%d", logPageMax), "out of range")
			return 0, 0, ve
		}
		limit = n
	}
	return from, limit, nil
}

// escapeText makes free text safe for one line of a text log: control
// characters and invalid UTF-8 are written as Go escapes (\n, \x1b).
func escapeText(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// logLineOf is an event's JSON log line.
func logLineOf(rec events.Record, msg string) logLine {
	line := logLine{Time: rec.Time.UTC(), Revision: rec.Revision, Position: rec.Position,
		Type: events.BaseType(rec.Type), Message: msg, UserID: rec.Metadata.UserID, Data: rec.Data}
	if p, err := events.Decode(rec); err == nil {
		t, _ := run.TransitionOf(p)
		if t.State != nil {
			line.Status = string(*t.State)
		}
		if t.CurrentStep != nil {
			line.CurrentStep = *t.CurrentStep
		}
		line.Progress = t.Progress
	}
	return line
}
