package actors

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/spectra-fab/spectra/actors/actorspb"
	"github.com/spectra-fab/spectra/events"
)

// Supervisor bookkeeping messages from run actors.
type (
	retired struct {
		runID string
		pid   *actor.PID
	}
	crashed struct {
		runID string
		pid   *actor.PID
	}
)

// command handles a command addressed to this run and replies to its sender.
func (a *runActor) command(ctx actor.Context, m *actorspb.RunCommand) {
	reply := func(r *actorspb.CommandReply) {
		if ctx.Sender() != nil {
			ctx.Respond(r)
		}
	}
	fail := func(code, msg string) {
		reply(&actorspb.CommandReply{RunId: a.runID, JobId: a.st.jobID, Status: a.st.status, ErrorCode: code, ErrorMessage: msg})
	}
	if m.Verb == actorspb.Verb_VERB_WAKE {
		// Loaded, and (if it runs or waits) known to the scheduler.
		a.svc.sched(ctx, &settled{runID: a.runID})
	}
	if a.gone || !a.loaded || !a.st.exists || (m.Meta != nil && m.Meta.OrgId != a.st.creator.OrgID) {
		fail(codeNotFound, fmt.Sprintf("run %s not found", a.runID))
		return
	}
	md := metaFrom(m.Meta)
	if m.JobId != "" && m.JobId != a.st.jobID && m.Verb != actorspb.Verb_VERB_WAKE {
		fail(codeInvalidState, fmt.Sprintf("job %s is not the current job of run %s (now %s)", m.JobId, a.runID, a.st.jobID))
		return
	}
	switch m.Verb {
	case actorspb.Verb_VERB_WAKE:
	case actorspb.Verb_VERB_CANCEL:
		if terminal(a.st.status) {
			fail(codeInvalidState, fmt.Sprintf("run %s is already %s and cannot be cancelled", a.runID, a.st.status))
			return
		}
		if !a.cancel(ctx, md, m.Reason) {
			fail(codeUnavailable, "the run stopped before the cancel was recorded; try again")
			return
		}
	case actorspb.Verb_VERB_PAUSE:
		if a.st.status != statusRunning {
			fail(codeInvalidState, fmt.Sprintf("run %s is %s; only a running run can be paused", a.runID, a.st.status))
			return
		}
		a.stopPacing(ctx)
		if !a.flushBatch(ctx) || !a.append(ctx, md, a.st.reqID, &events.RunPaused{JobID: a.st.jobID, Step: a.stepN}) {
			fail(codeUnavailable, "the pause could not be recorded; try again")
			return
		}
		ctx.SetReceiveTimeout(pausedCheck)
	case actorspb.Verb_VERB_RESUME:
		if a.st.status != statusPaused {
			fail(codeInvalidState, fmt.Sprintf("run %s is %s; only a paused run can be resumed", a.runID, a.st.status))
			return
		}
		if !a.append(ctx, md, a.st.reqID, &events.RunResumed{JobID: a.st.jobID, Step: a.stepN}) {
			fail(codeUnavailable, "the resume could not be recorded; try again")
			return
		}
		ctx.SetReceiveTimeout(0)
		if a.holdsSlot {
			a.startPacing(ctx)
		}
	case actorspb.Verb_VERB_RETRY:
		if a.st.status != statusFailed && a.st.status != statusCancelled {
			fail(codeInvalidState, fmt.Sprintf("run %s is %s; only a failed or cancelled job can be retried", a.runID, a.st.status))
			return
		}
		ev := &events.RunRetried{JobID: newJobID(), FromJobID: a.st.jobID, Seed: rand.Int64()}
		if !a.append(ctx, md, a.st.reqID, ev) {
			fail(codeUnavailable, "the retry could not be recorded; try again")
			return
		}
		ctx.SetReceiveTimeout(0)
		a.enqueue(ctx)
	default:
		fail(codeInvalidState, fmt.Sprintf("unknown command %v", m.Verb))
		return
	}
	reply(&actorspb.CommandReply{RunId: a.runID, JobId: a.st.jobID, Status: a.st.status,
		Position: a.st.position, Revision: a.st.revision, CreatedAtUnixNano: a.st.req.CreatedAt.UnixNano()})
}

// cancel stops the run at once: the telemetry so far, the request, and the
// safe state the tool is left in. A cancel already requested in the log
// (the actor stopped before its RunCancelled) is carried out, not
// requested again.
func (a *runActor) cancel(ctx actor.Context, md events.Metadata, reason string) bool {
	if reason == "" {
		reason = "cancelled by " + md.UserID
	}
	a.stopPacing(ctx)
	if a.retryT != nil {
		a.retryT.Stop()
		a.retryT = nil
	}
	if a.st.cancelReq == nil {
		if a.engine != nil && !a.flushBatch(ctx) {
			return false
		}
		if !a.append(ctx, md, a.st.reqID, &events.RunCancelRequested{JobID: a.st.jobID, Reason: reason}) {
			return false
		}
	}
	return a.completeCancel(ctx)
}

// completeCancel appends the RunCancelled of the pending cancel request,
// with the requester's metadata and reason, and gives the slot back.
func (a *runActor) completeCancel(ctx actor.Context) bool {
	req := a.st.cancelReq
	a.stopPacing(ctx)
	safe := "idle: the run had not started processing"
	if a.engine != nil {
		safe = a.engine.SafeState()
	}
	if !a.append(ctx, req.md, a.st.reqID, &events.RunCancelled{JobID: a.st.jobID, Step: a.stepN, Reason: req.reason, SafeState: safe}) {
		return false
	}
	a.engine = nil
	a.releaseSlot(ctx)
	ctx.SetReceiveTimeout(2 * time.Second)
	return true
}

const (
	codeNotFound     = "not_found"
	codeInvalidState = "invalid_state"
	codeUnavailable  = "unavailable"
)

func metaFrom(m *actorspb.Meta) events.Metadata {
	if m == nil {
		return events.Metadata{}
	}
	return events.Metadata{OrgID: m.OrgId, UserID: m.UserId, Role: m.Role, RequestID: m.RequestId,
		CorrelationID: m.CorrelationId, CausationID: m.CausationId, Node: m.Node}
}

func metaTo(md events.Metadata) *actorspb.Meta {
	return &actorspb.Meta{OrgId: md.OrgID, UserId: md.UserID, Role: md.Role, RequestId: md.RequestID,
		CorrelationId: md.CorrelationID, CausationId: md.CausationID, Node: md.Node}
}
