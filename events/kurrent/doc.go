// Package kurrent is the events.Store on KurrentDB (EventStoreDB) through
// the official gRPC client, github.com/EventStore/EventStore-Client-Go/v4
// (see ExampleOpen for a cluster's connection string).
//
// Mapping onto the port:
//   - A stream is a KurrentDB stream of the same name; an event's id is the
//     KurrentDB event id (a UUID), which makes retried appends idempotent on
//     the server; Record.Time is the event's "created" system metadata.
//   - events.Metadata is the event's custom metadata, as JSON, with the
//     KurrentDB conventions "$correlationId" and "$causationId" added so the
//     server's $by_correlation_id projection works.
//   - The global position is the $all commit position. KurrentDB commits
//     each event of a single-stream append at its own log position
//     (commit = prepare), so it is unique and ordered; a read from position
//     p starts at Position{p, p}. $all reads are inclusive and
//     subscriptions exclusive of their start: the adapter drops what is at
//     or before `after` on both, so `after` is exclusive everywhere.
//   - Subscribe is a catch-up subscription to $all with a server-side filter
//     (stream prefixes "<category>-" from Filter.Categories, else an event
//     type regex from Filter.Types, else "no system events"); the rest of
//     the filter (org, and whatever the server could not express) is
//     applied here. System streams and events ("$…") never reach callers.
//     A subscription that drops (a node restart, a leader change) resumes
//     from the last event it received, so nothing is missed or repeated;
//     checkpoints are not used as resume points because a server's
//     checkpoint may point past an event not yet delivered.
//   - Errors: a wrong expected version becomes *events.ConflictError (the
//     adapter reads the stream's last revision for it, and recognises a
//     retry whose first acknowledgement was lost); a missing stream is
//     events.ErrNotFound; a closed store is events.ErrClosed.
//
// Client traps handled here: the connection string needs tls=false for
// plain text (kurrentdb:// is translated to esdb://); a client whose
// discovery fails closes itself for good, so the store replaces it; a
// client must never be closed while a call is inside it (closing its
// channel panics a blocked sender), so the store counts calls per client;
// an event without "created" makes the client call log.Fatalf, so the
// package guards gRPC decoding (see created.go); esdb.FromError reports
// ok=false for an error, so errors are inspected with errors.As.
//
// Needs a server that sends the caught-up message on subscriptions
// (EventStoreDB 23.10 or later, KurrentDB).
package kurrent
