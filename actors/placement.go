package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/spectra-fab/spectra/actors/actorspb"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/run"
)

// RunKind is the cluster kind of run grains: a run is a virtual actor
// named by its run id, placed by the cluster's identity lookup.
const RunKind = "run"

// Placement delivers commands to run grains placed on any node of a
// cluster (package cluster implements it on protoactor's cluster).
type Placement interface {
	// Request delivers cmd to the one activation of the run cmd names,
	// activating it where the identity lookup places it, and returns its
	// reply; an error when no activation answered before timeout.
	Request(cmd *actorspb.RunCommand, timeout time.Duration) (*actorspb.CommandReply, error)
	// Leave takes this node out of the cluster before its actors stop.
	Leave()
}

type placed struct{ Placement }

// System is the node's actor system, which a cluster joins.
func (s *Service) System() *actor.ActorSystem { return s.system }

// RunGrain is the kind of run grains to register with a cluster before it
// starts: the same run actor, hosted as a virtual actor.
func (s *Service) RunGrain() *protocluster.Kind {
	return protocluster.NewKind(RunKind, actor.PropsFromProducer(func() actor.Actor {
		return &runActor{svc: s, grain: true}
	}))
}

// Place routes every command from now on through p: run actors are
// grains, wherever the cluster placed them.
func (s *Service) Place(p Placement) { s.placement.Store(&placed{p}) }

// Clustered reports whether commands go through a cluster.
func (s *Service) Clustered() bool { return s.placement.Load() != nil }

// placedRetries bounds how often a command is re-sent to a grain that was
// retiring (passivating) when it arrived.
const placedRetries = 5

func (s *Service) sendPlaced(ctx context.Context, p *placed, cmd *actorspb.RunCommand, timeout time.Duration) (*actorspb.CommandReply, error) {
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		reply, err := p.Request(cmd, time.Until(deadline))
		if err != nil {
			return nil, noReply(cmd.RunId, err, !time.Now().Before(deadline))
		}
		if reply.ErrorCode == codeRetiring && attempt < placedRetries && time.Until(deadline) > 100*time.Millisecond {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
			case <-time.After(20 * time.Millisecond << attempt):
			}
			continue
		}
		if err := errorOf(reply); err != nil {
			return nil, err
		}
		return reply, nil
	}
}

// codeRetiring answers a command that reached a grain on its way out
// (passivating, fenced, crashed): the sender tries again and reaches the
// next activation.
const codeRetiring = "retiring"

// wakeConcurrency bounds the wakes in flight from one node.
const wakeConcurrency = 8

// wakePlaced activates runs through the cluster in the background: each
// lands on its one owner, which loads it and carries on.
func (s *Service) wakePlaced(p *placed, runIDs []string) {
	if len(runIDs) == 0 || s.closed.Load() {
		return
	}
	s.wakes.Add(1)
	go func() {
		defer s.wakes.Done()
		sem := make(chan struct{}, wakeConcurrency)
		for _, id := range runIDs {
			select {
			case <-s.ctx.Done():
				return
			case sem <- struct{}{}:
			}
			s.wakes.Add(1)
			go func() {
				defer s.wakes.Done()
				defer func() { <-sem }()
				cmd := &actorspb.RunCommand{RunId: id, Verb: actorspb.Verb_VERB_WAKE}
				if _, err := s.sendPlaced(s.ctx, p, cmd, s.cfg.RequestTimeout); err != nil && !errors.Is(err, ErrNotFound) && s.ctx.Err() == nil {
					s.log.Warn("wake run through the cluster", "run_id", id, "err", err)
				}
			}()
		}
	}()
}

// retiringReply tells the sender of a command that reached a grain on its
// way out to send it again.
func (a *runActor) retiringReply(ctx actor.Context) {
	if ctx.Sender() != nil {
		ctx.Respond(&actorspb.CommandReply{RunId: a.runID, ErrorCode: codeRetiring, ErrorMessage: "run actor retiring"})
	}
}

// readAgain reads a grain's stream again when it looked empty: a replica
// of a replicated log may lag its leader by a few milliseconds, and a run
// created on another node a moment ago may not have reached this one's.
func (a *runActor) readAgain(err error) ([]events.Record, error) {
	for i := 0; i < 5 && (err == nil || errors.Is(err, events.ErrNotFound)); i++ {
		time.Sleep(20 * time.Millisecond << i)
		sctx, cancel := a.storeCtx()
		var recs []events.Record
		recs, err = a.svc.store.ReadStream(sctx, events.RunStream(a.runID), events.Forwards, 0, 0)
		cancel()
		if len(recs) > 0 {
			return recs, err
		}
	}
	return nil, err
}

// refence stops a grain whose append met another writer, like fence, and
// wakes the run again through the cluster: the identity lookup takes the
// wake to the run's one owner. If that is another node (a duplicate
// activation), this one is simply gone; if it is this node (the grain had
// loaded from a replica that lagged), the run carries on from its log.
func (a *runActor) refence(ctx actor.Context, err error) {
	a.svc.log.Warn("run grain fenced: another writer appended to its stream; re-activating through the cluster",
		"run_id", a.runID, "expected_revision", a.run.Revision, "err", err)
	a.svc.fenced.Add(1)
	a.gone = true
	a.stopTimers(ctx)
	if a.loaded && a.run.Exists() {
		a.releaseSlot(ctx)
	}
	ctx.Send(a.svc.supervisor, &crashed{runID: a.runID, pid: ctx.Self()})
	ctx.Stop(ctx.Self())
}

// activated counts a grain's activation, and a re-activation when the run
// was already under way: a node died, a grain moved, or a duplicate.
func (a *runActor) activated() {
	if !a.grain {
		return
	}
	a.svc.activations.Add(1)
	if a.run != nil && a.run.Exists() {
		switch a.run.State() {
		case run.Running, run.Paused, run.Retrying:
			a.svc.reactivations.Add(1)
		}
	}
}

// Activations counts run grains activated on this node, and of those the
// re-activations of runs already under way (after a node's loss, a move,
// a fenced duplicate).
func (s *Service) Activations() (activations, reactivations int64) {
	return s.activations.Load(), s.reactivations.Load()
}
