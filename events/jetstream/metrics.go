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
	}
	if srv != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_store_fsyncs_total",
			Help: "Messages the embedded JetStream server stored over all its streams, each fsynced before its acknowledgement (sync on)."},
			func() float64 { return float64(srv.storedMessages()) }))
	}
	return cs
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
