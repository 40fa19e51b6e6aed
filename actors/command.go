package actors

import (
	"errors"
	"fmt"

	"github.com/spectra-fab/spectra/actors/actorspb"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/run"
)

// Error codes of a CommandReply. replyError and errorOf are the one pair
// of functions that turn an error into a reply and back.
const (
	codeNotFound     = "not_found"
	codeInvalidState = "invalid_state"
	codeUnavailable  = "unavailable"
)

// replyError encodes err for a CommandReply ("" for nil).
func replyError(err error) (code, msg string) {
	var se *run.StateError
	switch {
	case err == nil:
		return "", ""
	case errors.As(err, &se):
		return codeInvalidState, se.Command + "\x00" + string(se.State) + "\x00" + se.Reason
	case errors.Is(err, ErrNotFound):
		return codeNotFound, err.Error()
	default:
		return codeUnavailable, err.Error()
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
		p := splitNul(r.ErrorMessage)
		return &StateError{Command: p[0], State: run.State(p[1]), Reason: p[2]}
	default:
		return fmt.Errorf("%w: %s", ErrUnavailable, r.ErrorMessage)
	}
}

func splitNul(s string) [3]string {
	var out [3]string
	i := 0
	for j := 0; j < len(s) && i < 2; j++ {
		if s[j] == 0 {
			out[i], s, j = s[:j], s[j+1:], -1
			i++
		}
	}
	out[i] = s
	return out
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
