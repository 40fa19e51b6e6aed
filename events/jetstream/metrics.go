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
}

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
