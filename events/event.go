package events

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
)

// Metadata says who and what caused an event. Every event carries it, so
// "who did what, when" is a query over the log.
type Metadata struct {
	OrgID         string `json:"org_id,omitempty"`
	UserID        string `json:"user_id,omitempty"`
	Role          string `json:"role,omitempty"`
	RequestID     string `json:"request_id,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	CausationID   string `json:"causation_id,omitempty"`
	Node          string `json:"node,omitempty"`
	// TraceID and SpanID are the W3C trace context (hex) of the request
	// that caused the event, so its events link to that request's trace.
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
	// Prev, Seal and SealSig make a run stream tamper-evident (chain.go):
	// Prev is the link (hash) of the stream's previous event, Seal the
	// link of a terminal event over its predecessors, SealSig an Ed25519
	// signature of Seal. Empty on other streams and in older logs.
	Prev    string `json:"prev,omitempty"`
	Seal    string `json:"seal,omitempty"`
	SealSig string `json:"seal_sig,omitempty"`
}

// LogValue groups the metadata in logs.
func (m Metadata) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("org_id", m.OrgID), slog.String("user_id", m.UserID),
		slog.String("role", m.Role), slog.String("request_id", m.RequestID),
		slog.String("correlation_id", m.CorrelationID))
}

// Event is an event to append: its id, versioned type name, JSON payload
// and metadata.
type Event struct {
	ID       string
	Type     string // versioned, e.g. "RunStarted.v1"
	Data     json.RawMessage
	Metadata Metadata
}

// Record is a stored event.
type Record struct {
	ID       string          `json:"id"`
	Stream   string          `json:"stream"`
	Revision uint64          `json:"revision"`
	Position uint64          `json:"position"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
	Metadata Metadata        `json:"metadata"`
}

// NewID returns a random event id.
func NewID() string { return uuid.NewString() }

// idNamespace is the UUID namespace of ids derived from idempotency keys.
var idNamespace = uuid.MustParse("5d0b1f4e-8c61-4c55-9c43-6a3f2a1b7e90")

// DeriveID returns a deterministic event id from parts (an organisation, an
// idempotency key, an index), so a retried command appends nothing twice.
func DeriveID(parts ...string) string {
	h := sha1.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return uuid.NewSHA1(idNamespace, h.Sum(nil)).String()
}

// MetadataJSON returns json.Marshal's bytes of m (every field a string,
// omitted when empty), without reflection when its fields are plain
// (appendMetadataJSON): the store frames every event's metadata, and a
// run's events each carry their own (their chain links). Not a
// MarshalJSON method: the OpenAPI schema describes Metadata by its fields.
func MetadataJSON(m Metadata) ([]byte, error) {
	n := 16 * 12
	for _, v := range [...]string{m.OrgID, m.UserID, m.Role, m.RequestID, m.CorrelationID, m.CausationID, m.Node,
		m.TraceID, m.SpanID, m.Prev, m.Seal, m.SealSig} {
		n += len(v)
	}
	if b, ok := appendMetadataJSON(make([]byte, 0, n), &m); ok {
		return b, nil
	}
	return json.Marshal(m)
}
