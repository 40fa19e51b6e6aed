package jetstream

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spectra-fab/spectra/events"
)

// An event is stored as one message: the payload is the body, unchanged;
// the envelope is in headers. The time is the server's own timestamp and
// the position its sequence, so neither is stored twice.
const (
	hdrID       = nats.MsgIdHdr // "Nats-Msg-Id": also de-duplicates re-sent events
	hdrType     = "Spectra-Type"
	hdrRevision = "Spectra-Revision"
	hdrMetadata = "Spectra-Metadata" // JSON; absent when empty

	hdrExpectedLastSubjSeq = "Nats-Expected-Last-Subject-Sequence"
)

func encode(subj string, ev events.Event, rev uint64) (*nats.Msg, error) {
	m := nats.NewMsg(subj)
	m.Data = ev.Data
	m.Header.Set(hdrID, ev.ID)
	m.Header.Set(hdrType, ev.Type)
	m.Header.Set(hdrRevision, strconv.FormatUint(rev, 10))
	if ev.Metadata != (events.Metadata{}) {
		// JSON escapes control characters, so the value stays one
		// header line whatever the metadata holds.
		md, err := json.Marshal(ev.Metadata)
		if err != nil {
			return nil, fmt.Errorf("encode metadata: %w", err)
		}
		m.Header.Set(hdrMetadata, string(md))
	}
	return m, nil
}

func decode(subj string, seq uint64, t time.Time, h nats.Header, data []byte) (events.Record, error) {
	stream, ok := streamOf(subj)
	if !ok {
		return events.Record{}, fmt.Errorf("decode %d: subject %q is not an event stream", seq, subj)
	}
	rev, err := strconv.ParseUint(h.Get(hdrRevision), 10, 64)
	if err != nil {
		return events.Record{}, fmt.Errorf("decode %d: revision: %w", seq, err)
	}
	rec := events.Record{
		ID:       h.Get(hdrID),
		Stream:   stream,
		Revision: rev,
		Position: seq,
		Type:     h.Get(hdrType),
		Time:     t.UTC(),
		Data:     data,
	}
	if md := h.Get(hdrMetadata); md != "" {
		if err := json.Unmarshal([]byte(md), &rec.Metadata); err != nil {
			return events.Record{}, fmt.Errorf("decode %d: metadata: %w", seq, err)
		}
	}
	return rec, nil
}
