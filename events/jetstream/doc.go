// Package jetstream is Spectra's default event store, on NATS JetStream.
// It can embed the NATS server in-process, so one binary is a complete
// system, or connect to an external NATS cluster (see ExampleOpen).
//
// Layout: one JetStream stream (SPECTRA_EVENTS) with subjects
// ev.<category>.<stream id>; an event is one message whose body is the
// payload and whose headers carry the id (Nats-Msg-Id), the type, the
// revision and the metadata. The stream sequence is the global position
// and the server's timestamp the record's time. The stream denies deletes
// and purges: the log only grows.
//
// Concurrency: an append expects the sequence of the stream's last event
// (Nats-Expected-Last-Subject-Sequence), which the server checks
// atomically; the store maps revisions to those sequences from its own
// appends and reads, or by looking the last event up. Several events are
// one atomic batch. A refused append is checked against the stream: when
// its events are already there, where the expectation put them, it was a
// retry whose acknowledgement got lost and the original result is
// returned; otherwise it is an *events.ConflictError.
//
// The store's connection also serves KV buckets (KeyValue) and object
// stores (ObjectStore) for what is not an event.
package jetstream
