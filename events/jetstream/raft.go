package jetstream

import (
	"fmt"
	"sync"
	"time"
	_ "unsafe" // go:linkname to the server's Raft timing

	_ "github.com/nats-io/nats-server/v2/server"
)

// RaftTiming is the Raft timing of an embedded clustered server: how long
// a follower waits without hearing from its group's leader before it
// stands for election (a random time between MinElection and MaxElection),
// and how often an idle leader says it is alive (Heartbeat).
//
// nats-server waits 4–9 s with 1 s heartbeats (NATSRaft). A node killed
// with kill -9 while it led the log's stream then stops every append for
// that long, and runs resume only after it. FailoverRaft waits 1–2 s, so
// a new leader is elected before the membership notices the loss (2.5 s),
// and even after a split vote (a second round) soon after. The price: a
// leader starved for 1 s (a long GC pause, a saturated machine) loses its
// group to a spurious election (appends pause for the new election), and
// idle groups send heartbeats four times as often. See deploy/README.md.
//
// The server keeps these in unexported package variables; they are set
// through go:linkname, process-wide, before a clustered server starts.
// Every server of a cluster must use the same timing (the nodes run the
// same binary and flags).
type RaftTiming struct {
	MinElection, MaxElection, Heartbeat time.Duration
}

var (
	// NATSRaft is nats-server's own timing (v2.15).
	NATSRaft = RaftTiming{MinElection: 4 * time.Second, MaxElection: 9 * time.Second, Heartbeat: time.Second}
	// FailoverRaft is Spectra's default for embedded clusters.
	FailoverRaft = RaftTiming{MinElection: time.Second, MaxElection: 2 * time.Second, Heartbeat: 250 * time.Millisecond}
)

//go:linkname raftMinElection github.com/nats-io/nats-server/v2/server.minElectionTimeout
var raftMinElection time.Duration

//go:linkname raftMaxElection github.com/nats-io/nats-server/v2/server.maxElectionTimeout
var raftMaxElection time.Duration

//go:linkname raftHeartbeat github.com/nats-io/nats-server/v2/server.hbInterval
var raftHeartbeat time.Duration

// raftMu orders the writes of setRaft with the reads of CurrentRaft; the
// server reads the variables without it, which is why they change only
// before a clustered server starts.
var raftMu sync.Mutex

// CurrentRaft is the Raft timing servers of this process use.
func CurrentRaft() RaftTiming {
	raftMu.Lock()
	defer raftMu.Unlock()
	return RaftTiming{MinElection: raftMinElection, MaxElection: raftMaxElection, Heartbeat: raftHeartbeat}
}

func (r RaftTiming) check() error {
	if r.Heartbeat <= 0 || r.MinElection < 4*r.Heartbeat || r.MaxElection <= r.MinElection {
		return fmt.Errorf("raft timing %+v: want heartbeat > 0, min election ≥ 4 heartbeats, max election > min", r)
	}
	return nil
}

// setRaft sets the process's Raft timing; it writes only what differs, so
// servers started later in the same process with the same timing do not
// race with running ones.
func setRaft(r RaftTiming) error {
	if err := r.check(); err != nil {
		return err
	}
	raftMu.Lock()
	defer raftMu.Unlock()
	if raftMinElection != r.MinElection {
		raftMinElection = r.MinElection
	}
	if raftMaxElection != r.MaxElection {
		raftMaxElection = r.MaxElection
	}
	if raftHeartbeat != r.Heartbeat {
		raftHeartbeat = r.Heartbeat
	}
	return nil
}
