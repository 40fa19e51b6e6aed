package actors

import (
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/spectra-fab/spectra/actors/actorspb"
)

// supervisor is the parent of every run actor on a node. It spawns a run's
// actor on the first command for it, forgets actors that retire, and wakes
// a crashed run again after an exponential back-off.
type supervisor struct {
	svc      *Service
	children map[string]*actor.PID
	byPID    map[string]string // pid id → run id
	failures map[string]int
	timers   map[string]*time.Timer
	// unsure: per run, the appends of unknown outcome its last activation
	// left (runActor.unsure), for the next.
	unsure map[string][]string
}

func newSupervisor(svc *Service) *supervisor {
	return &supervisor{svc: svc, children: map[string]*actor.PID{}, byPID: map[string]string{},
		failures: map[string]int{}, timers: map[string]*time.Timer{}, unsure: map[string][]string{}}
}

var wakeBackoff = backoff{base: 100 * time.Millisecond, cap: 30 * time.Second}

func (s *supervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actorspb.RunCommand:
		pid := s.child(ctx, m.RunId)
		ctx.Forward(pid)
	case *retired:
		s.forget(m.runID, m.pid)
		delete(s.failures, m.runID)
		delete(s.unsure, m.runID)
		if t := s.timers[m.runID]; t != nil {
			t.Stop()
			delete(s.timers, m.runID)
		}
	case *crashed:
		s.forget(m.runID, m.pid)
		if len(m.unsure) > 0 {
			s.unsure[m.runID] = m.unsure
		} else {
			delete(s.unsure, m.runID)
		}
		d := wakeBackoff.base // a reload: at once
		if !m.reload {
			s.failures[m.runID]++
			d = wakeBackoff.delay(s.failures[m.runID])
		}
		svc, runID := s.svc, m.runID
		if t := s.timers[runID]; t != nil {
			t.Stop()
		}
		// Through wake: in cluster mode the run may come back on any node.
		s.timers[runID] = time.AfterFunc(d, func() { svc.wake(runID) })
	case *actor.Terminated:
		if runID, ok := s.byPID[m.Who.Id]; ok {
			s.forget(runID, m.Who)
		}
	case *actor.Stopping:
		for _, t := range s.timers {
			t.Stop()
		}
	}
}

func (s *supervisor) child(ctx actor.Context, runID string) *actor.PID {
	if pid, ok := s.children[runID]; ok {
		return pid
	}
	// A pending wake-up timer has fired or is moot: the run has an actor.
	if t := s.timers[runID]; t != nil {
		t.Stop()
		delete(s.timers, runID)
	}
	unsure := s.unsure[runID]
	props := actor.PropsFromProducer(func() actor.Actor {
		return &runActor{svc: s.svc, runID: runID, unsure: slices.Clone(unsure)}
	},
		actor.WithDispatcher(s.svc.workers))
	pid := ctx.SpawnPrefix(props, "run-"+runID+"-")
	s.children[runID] = pid
	s.byPID[pid.Id] = runID
	return pid
}

func (s *supervisor) forget(runID string, pid *actor.PID) {
	if cur, ok := s.children[runID]; ok && cur.Equal(pid) {
		delete(s.children, runID)
	}
	delete(s.byPID, pid.Id)
}

// backoffStrategy supervises run actors that panic (a programming error:
// store failures do not panic). It restarts the child after an exponential
// back-off, and stops it for good after too many failures in a minute.
type backoffStrategy struct {
	svc *Service
}

func (b backoffStrategy) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, reason, message any) {
	rs.Fail()
	n := rs.NumberOfFailures(time.Minute)
	if n > 5 {
		b.svc.log.Error("run actor keeps failing; stopped", "pid", child.Id, "reason", reason, "message", message)
		sup.StopChildren(child)
		return
	}
	b.svc.log.Error("run actor panicked; restarting after back-off", "pid", child.Id, "reason", reason, "failures", n)
	time.AfterFunc(wakeBackoff.delay(n), func() { sup.RestartChildren(child) })
}
