package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/spectra-fab/spectra/actors/actorspb"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/run"
)

// Error codes of a CommandReply. setReplyError and errorOf are the one
// pair of functions that turn an error into a reply and back.
const (
	codeNotFound     = "not_found"
	codeInvalidState = "invalid_state"
	codeUnavailable  = "unavailable"
)

// setReplyError records err in r (nothing for nil). A state refusal keeps
// its command, state and reason in fields of their own.
func setReplyError(r *actorspb.CommandReply, err error) {
	var se *run.StateError
	switch {
	case err == nil:
		return
	case errors.As(err, &se):
		r.ErrorCode, r.ErrorMessage = codeInvalidState, se.Error()
		r.Refusal = &actorspb.StateRefusal{Command: se.Command, State: string(se.State), Reason: se.Reason}
	case errors.Is(err, ErrNotFound):
		r.ErrorCode, r.ErrorMessage = codeNotFound, err.Error()
	default:
		r.ErrorCode, r.ErrorMessage = codeUnavailable, err.Error()
	}
}

// errorOf decodes a CommandReply's error: ErrNotFound, a *StateError, or
// ErrUnavailable with the actor's message.
func errorOf(r *actorspb.CommandReply) error {
	switch r.ErrorCode {
	case "":
		return nil
	case codeNotFound:
		return fmt.Errorf("run %s: %w", r.RunId, ErrNotFound)
	case codeInvalidState:
		if f := r.GetRefusal(); f != nil {
			return &StateError{Command: f.Command, State: run.State(f.State), Reason: f.Reason}
		}
		return &StateError{Reason: r.ErrorMessage} // a node from before the refusal field
	default:
		return fmt.Errorf("%w: %s", ErrUnavailable, r.ErrorMessage)
	}
}

// noReply is the error of a command that got no reply. Past its deadline
// it wraps context.DeadlineExceeded: the actor may still carry the command
// out, so the caller reads the run before repeating it. Otherwise the
// actor system could not take it (ErrUnavailable).
func noReply(runID string, err error, timedOut bool) error {
	if timedOut {
		return fmt.Errorf("run %s: no reply in time, the command may still take effect: %w", runID, context.DeadlineExceeded)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

func metaFrom(m *actorspb.Meta) events.Metadata {
	if m == nil {
		return events.Metadata{}
	}
	return events.Metadata{OrgID: m.OrgId, UserID: m.UserId, Role: m.Role, RequestID: m.RequestId,
		CorrelationID: m.CorrelationId, CausationID: m.CausationId, Node: m.Node, TraceID: m.TraceId, SpanID: m.SpanId}
}

func metaTo(md events.Metadata) *actorspb.Meta {
	return &actorspb.Meta{OrgId: md.OrgID, UserId: md.UserID, Role: md.Role, RequestId: md.RequestID,
		CorrelationId: md.CorrelationID, CausationId: md.CausationID, Node: md.Node, TraceId: md.TraceID, SpanId: md.SpanID}
}
