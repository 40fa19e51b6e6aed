package jetstream

import (
	"sync/atomic"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

// storeStats counts what a Store wrote: the NATS messages it published
// (with the server's sync on, one fsync each) and the events they carried.
type storeStats struct {
	messages atomic.Uint64
	events   atomic.Uint64
	acked    atomic.Uint64 // highest position an append through this Store was acknowledged at
}

// ack raises the acknowledged watermark to pos.
func (st *storeStats) ack(pos uint64) {
	for {
		cur := st.acked.Load()
		if pos <= cur || st.acked.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// EventsAppended counts the events appended through this Store.
func (s *Store) EventsAppended() uint64 { return s.stats.events.Load() }

// Acknowledged is the highest log position an append through this Store
// has been acknowledged at (0: none yet): a lower bound of the log's head
// that costs no request. When this Store is the log's only writer it is
// the head as far as anything acknowledged goes; Head asks the server
// (its stream lock and its message loop, which are busy with the appends'
// fsyncs under load).
func (s *Store) Acknowledged() uint64 { return s.stats.acked.Load() }

// CommitStats counts what the group committer (Options.GroupCommit)
// committed: Commits (single messages and atomic batches) of Appends
// single-message appends, so Appends/Commits is the appends per commit;
// Batches of them held Grouped appends; Refused batches were refused (or
// their outcome lost) and their members published alone. All zero without
// group commit.
type CommitStats struct {
	Commits, Appends, Batches, Grouped, Refused uint64
}

// CommitStats returns the group committer's counts so far.
func (s *Store) CommitStats() CommitStats {
	if s.gc == nil {
		return CommitStats{}
	}
	return CommitStats{Commits: s.gc.commits.Load(), Appends: s.gc.appends.Load(), Batches: s.gc.batches.Load(),
		Grouped: s.gc.grouped.Load(), Refused: s.gc.refusals.Load()}
}

// fsyncsPerBatch is what a group commit's atomic batch costs in
// synchronous writes on a single server, counted with strace
// (groupcommit.go): five fsyncs and two O_SYNC writes.
const fsyncsPerBatch = 7

// Collectors are the store's metrics: events appended and the messages
// that carried them. With srv (the embedded server, when sync is on) also
// the fsyncs of every JetStream write of the node — events, checkpoints,
// artifacts: with SyncAlways the server's file store fsyncs each stored
// message (fileStore.writeMsgRecord → msgBlock.flushPendingMsgsLocked →
// mfd.Sync), so messages stored over every stream count them.
func (s *Store) Collectors(srv *Server) []prometheus.Collector {
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_store_events_appended_total",
			Help: "Events this node appended to the event log."},
			func() float64 { return float64(s.stats.events.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_store_appends_total",
			Help: "JetStream messages that carried this node's appends (one message per Append, whatever its events)."},
			func() float64 { return float64(s.stats.messages.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_store_commits_total",
			Help: "Commits of this node's single-message appends with group commit on: an append's own message, or a group's atomic batch."},
			func() float64 { return float64(s.CommitStats().Commits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_store_committed_appends_total",
			Help: "Appends committed with group commit on; divided by spectra_store_commits_total: appends per commit."},
			func() float64 { return float64(s.CommitStats().Appends) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_store_group_commit_refusals_total",
			Help: "Group commits refused by the server (a member's expected revision, a duplicate) or lost, whose members were published alone."},
			func() float64 { return float64(s.CommitStats().Refused) }),
	}
	if srv != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_store_fsyncs_total",
			Help: "Fsyncs of the embedded JetStream server (sync on): messages stored over all its streams, each fsynced before its acknowledgement, except the appends of group commits, which cost seven synchronous writes per batch."},
			func() float64 { return float64(s.Fsyncs(srv)) }))
	}
	return cs
}

// Fsyncs estimates the fsyncs of the embedded server srv (with sync on):
// one per message stored over all its streams, except that a group
// commit's appends cost fsyncsPerBatch per batch.
func (s *Store) Fsyncs(srv *Server) uint64 {
	st, n := s.CommitStats(), srv.storedMessages()
	if n < st.Grouped { // the server did not answer
		return 0
	}
	return n - st.Grouped + fsyncsPerBatch*st.Batches
}

// storedMessages is how many messages the server's streams have stored
// since they were created (the sum of their last sequences).
func (s *Server) storedMessages() uint64 {
	info, err := s.ns.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return 0
	}
	var n uint64
	for _, a := range info.AccountDetails {
		for _, st := range a.Streams {
			n += st.State.LastSeq
		}
	}
	return n
}
