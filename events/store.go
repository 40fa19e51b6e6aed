package events

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors of the Store port. Adapters translate their driver's
// errors into these; callers test them with errors.Is.
var (
	// ErrConflict means the stream's revision was not the expected one:
	// another writer got there first.
	ErrConflict = errors.New("wrong expected revision")
	// ErrNotFound means the stream does not exist.
	ErrNotFound = errors.New("stream not found")
	// ErrClosed means the store or subscription was closed.
	ErrClosed = errors.New("store closed")
	// ErrInvalid means the request itself is malformed (bad stream name,
	// empty append, event without id or type).
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable means the store's server is known to be unreachable:
	// the call failed without waiting out its deadline. An append that
	// fails with it may still have been recorded, if it reached the server
	// before the server stopped answering.
	ErrUnavailable = errors.New("event store unavailable")
)

// ConflictError says which revision an append expected and what the stream
// had. It matches ErrConflict.
type ConflictError struct {
	Stream   string
	Expected Expected
	Actual   int64 // the stream's last revision, -1 when it does not exist, -2 when unknown
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("append %s: expected %s, stream at %d: %v", e.Stream, e.Expected, e.Actual, ErrConflict)
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Expected is the revision an append expects the stream to be at: a
// revision (≥ 0), ExpectAny or ExpectNoStream.
type Expected int64

const (
	// ExpectAny appends whatever the stream's revision.
	ExpectAny Expected = -1
	// ExpectNoStream appends only when the stream does not exist yet.
	ExpectNoStream Expected = -2
)

// ExpectRevision expects the stream's last event to have revision rev.
func ExpectRevision(rev uint64) Expected { return Expected(rev) }

func (e Expected) String() string {
	switch e {
	case ExpectAny:
		return "any"
	case ExpectNoStream:
		return "no stream"
	}
	return fmt.Sprintf("revision %d", int64(e))
}

// AppendResult is where an append put its last event.
type AppendResult struct {
	Revision uint64 // the stream revision of the last appended event
	Position uint64 // the global position of the last appended event
}

// Direction of a stream read.
type Direction int

// Read directions.
const (
	Forwards Direction = iota
	Backwards
)

// Filter selects records of a read or subscription over all streams. The
// zero Filter selects everything. Within a field the values are alternatives;
// the fields are combined with "and".
type Filter struct {
	Categories []string // stream categories, e.g. "run" for run-*
	Types      []string // event type names without version, e.g. "RunCompleted"
	OrgID      string   // metadata org_id
}

// Match reports whether rec passes the filter.
func (f Filter) Match(rec Record) bool {
	if len(f.Categories) > 0 && !contains(f.Categories, Category(rec.Stream)) {
		return false
	}
	if len(f.Types) > 0 && !contains(f.Types, BaseType(rec.Type)) {
		return false
	}
	if f.OrgID != "" && rec.Metadata.OrgID != f.OrgID {
		return false
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Item is what a subscription delivers: a record, or the signal that the
// subscription has caught up with the log and what follows is live.
type Item struct {
	Record   Record
	CaughtUp bool
}

// Subscription delivers records in position order: first the stored ones
// after the starting position, then one Item with CaughtUp set, then live
// records as they are appended, with no gap and no duplicate.
type Subscription interface {
	// Next blocks until the next item. It returns ctx.Err() when ctx ends
	// and ErrClosed once the subscription or its store is closed.
	Next(ctx context.Context) (Item, error)
	// Close ends the subscription and releases its resources.
	Close() error
}

// Store is the event store port. Implementations are safe for concurrent use.
type Store interface {
	// Append writes events to the end of stream atomically, provided the
	// stream is at the expected revision. Re-appending the same events
	// with the same expectation (a retry after a lost acknowledgement)
	// writes nothing and returns the original result, as long as the
	// events are where that expectation put them (right after the
	// expected revision; for ExpectAny, at the end of the stream).
	// Returns a *ConflictError (matching ErrConflict) when the stream is
	// elsewhere, ErrInvalid for an empty append, a bad stream name, an
	// event without id or type, or an id given twice.
	Append(ctx context.Context, stream string, expected Expected, evs ...Event) (AppendResult, error)

	// ReadStream reads up to limit records (0: all) of stream, starting
	// at revision from and going in dir. Backwards from revision
	// math.MaxUint64 (or any revision past the end) starts at the end;
	// forwards from past the end returns no records. Returns ErrNotFound
	// when the stream does not exist.
	ReadStream(ctx context.Context, stream string, dir Direction, from uint64, limit int) ([]Record, error)

	// ReadAll reads up to limit records (0: all) over all streams whose
	// position is greater than after, in position order, that pass f.
	ReadAll(ctx context.Context, after uint64, f Filter, limit int) ([]Record, error)

	// Subscribe delivers every record after position after that passes
	// f, then a caught-up item, then live records. after = 0 starts at the
	// beginning of the log.
	Subscribe(ctx context.Context, after uint64, f Filter) (Subscription, error)

	// Close releases the store. Subscriptions end with ErrClosed, and so
	// do later calls. Closing twice is harmless.
	Close() error
}
