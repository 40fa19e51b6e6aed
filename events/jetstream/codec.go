package jetstream

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spectra-fab/spectra/events"
)

// One Append is one message (or, when its events belong to several
// organisations or outgrow one message, an atomic batch of as few messages
// as fit): with the server's sync on, an fsync per message, so an append
// of n events costs one fsync, not n.
//
// A message of one event holds its payload as the body, unchanged, and
// the envelope in headers. A message of n > 1 events says so in
// Spectra-Count and frames them in its body, each as four
// length-prefixed (uvarint) fields: id, type, metadata (JSON; empty: the
// message's Spectra-Metadata) and payload. Spectra-Revision is the
// revision of the message's first event; the others follow it. The time
// is the server's timestamp.
//
// Positions: the event at index i of the message at stream sequence seq
// is at position seq×PositionsPerMessage + i. Positions so grow with the
// log, are unique, and name their message: a reader starts at message
// position/PositionsPerMessage and skips what lies before.
const (
	hdrID       = nats.MsgIdHdr // "Nats-Msg-Id": the first event's id; also de-duplicates a re-sent message
	hdrType     = "Spectra-Type"
	hdrRevision = "Spectra-Revision"
	hdrCount    = "Spectra-Count"    // events in the message; absent: 1
	hdrMetadata = "Spectra-Metadata" // JSON; absent when empty

	hdrExpectedLastSubjSeq     = "Nats-Expected-Last-Subject-Sequence"
	hdrExpectedLastSubjSeqSubj = "Nats-Expected-Last-Subject-Sequence-Subject"
)

// PositionsPerMessage is how many positions one message spans: the most
// events one message may carry.
const PositionsPerMessage = 1000

// maxMessageBody is the most payload bytes one message carries before
// an append spills into a second message of an atomic batch (NATS's
// default max_payload is 1 MiB; headers need room too).
const maxMessageBody = 900 << 10

func position(seq uint64, i int) uint64 { return seq*PositionsPerMessage + uint64(i) }

// messageOf is the sequence of the message holding position p.
func messageOf(p uint64) uint64 { return p / PositionsPerMessage }

// Distance is how many messages lie between positions from and to (to ≥
// from): a lag in appends, whatever the events per append.
func Distance(from, to uint64) uint64 {
	if to <= from {
		return 0
	}
	return messageOf(to) - messageOf(from)
}

// group splits an append's events into messages: consecutive events of
// one organisation, at most PositionsPerMessage of them and about
// maxMessageBody bytes.
func group(evs []events.Event) [][]events.Event {
	var out [][]events.Event
	start, size := 0, 0
	for i, ev := range evs {
		n := len(ev.Data) + len(ev.ID) + len(ev.Type) + 64
		if i > start && (ev.Metadata.OrgID != evs[start].Metadata.OrgID || size+n > maxMessageBody || i-start == PositionsPerMessage) {
			out = append(out, evs[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(out, evs[start:])
}

// encode makes the message of evs, whose first event has revision rev, for
// stream.
func encode(stream string, evs []events.Event, rev uint64) (*nats.Msg, error) {
	m := nats.NewMsg(subject(stream, evs[0].Metadata.OrgID))
	m.Header.Set(hdrID, evs[0].ID)
	m.Header.Set(hdrRevision, strconv.FormatUint(rev, 10))
	md := evs[0].Metadata
	for _, ev := range evs[1:] {
		if ev.Metadata != md {
			md = events.Metadata{}
			break
		}
	}
	if md != (events.Metadata{}) {
		// JSON escapes control characters, so the value stays one
		// header line whatever the metadata holds.
		b, err := events.MetadataJSON(md)
		if err != nil {
			return nil, fmt.Errorf("encode metadata: %w", err)
		}
		m.Header.Set(hdrMetadata, string(b))
	}
	if len(evs) == 1 {
		m.Header.Set(hdrType, evs[0].Type)
		m.Data = evs[0].Data
		return m, nil
	}
	m.Header.Set(hdrCount, strconv.Itoa(len(evs)))
	size := 0
	for _, ev := range evs {
		size += len(ev.ID) + len(ev.Type) + len(ev.Data) + 4*binary.MaxVarintLen32
	}
	body := make([]byte, 0, size)
	for _, ev := range evs {
		var own []byte
		if md == (events.Metadata{}) && ev.Metadata != (events.Metadata{}) {
			b, err := events.MetadataJSON(ev.Metadata)
			if err != nil {
				return nil, fmt.Errorf("encode metadata: %w", err)
			}
			own = b
		}
		for _, f := range [][]byte{[]byte(ev.ID), []byte(ev.Type), own, ev.Data} {
			body = binary.AppendUvarint(body, uint64(len(f)))
			body = append(body, f...)
		}
	}
	m.Data = body
	return m, nil
}

// revisions reads the first revision of a message and how many events it
// holds from its headers.
func revisions(h nats.Header) (first uint64, n int, err error) {
	first, err = strconv.ParseUint(h.Get(hdrRevision), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("revision: %w", err)
	}
	n = 1
	if c := h.Get(hdrCount); c != "" {
		if n, err = strconv.Atoi(c); err != nil || n < 1 || n > PositionsPerMessage {
			return 0, 0, fmt.Errorf("event count %q", c)
		}
	}
	return first, n, nil
}

var errFraming = errors.New("bad framing")

// decode expands the message at sequence seq into its events' records,
// appending them to out. The records' payloads share data.
func decode(out []events.Record, subj string, seq uint64, t time.Time, h nats.Header, data []byte) ([]events.Record, error) {
	stream, ok := streamOf(subj)
	if !ok {
		return out, fmt.Errorf("decode %d: subject %q is not an event stream", seq, subj)
	}
	rev, n, err := revisions(h)
	if err != nil {
		return out, fmt.Errorf("decode %d: %w", seq, err)
	}
	var md events.Metadata
	if raw := h.Get(hdrMetadata); raw != "" {
		if err := decodeMetadata([]byte(raw), &md); err != nil {
			return out, fmt.Errorf("decode %d: metadata: %w", seq, err)
		}
	}
	if ts := h.Get(hdrTime); ts != "" { // a migrated message: its original time
		if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return out, fmt.Errorf("decode %d: time: %w", seq, err)
		}
	}
	t = t.UTC()
	if n == 1 {
		return append(out, events.Record{ID: h.Get(hdrID), Stream: stream, Revision: rev, Position: position(seq, 0),
			Type: h.Get(hdrType), Time: t, Data: data, Metadata: md}), nil
	}
	field := func() ([]byte, error) {
		var l uint64
		var k int
		if len(data) > 0 && data[0] < 0x80 { // a length under 128: one byte
			l, k = uint64(data[0]), 1
		} else {
			l, k = binary.Uvarint(data)
		}
		if k <= 0 || l > uint64(len(data)-k) {
			return nil, errFraming
		}
		f := data[k : k+int(l) : k+int(l)]
		data = data[k+int(l):]
		return f, nil
	}
	out = slices.Grow(out, n)
	for i := range n {
		var fs [4][]byte
		for j := range fs {
			if fs[j], err = field(); err != nil {
				return out, fmt.Errorf("decode %d: event %d: %w", seq, i, err)
			}
		}
		// Written in place: a record is large, and most of a log's
		// records come through here.
		out = append(out, events.Record{})
		rec := &out[len(out)-1]
		rec.ID, rec.Stream, rec.Revision, rec.Position = string(fs[0]), stream, rev+uint64(i), position(seq, i)
		rec.Type, rec.Time, rec.Data, rec.Metadata = typeName(fs[1]), t, fs[3], md
		if len(fs[2]) > 0 {
			rec.Metadata = events.Metadata{}
			if err := decodeMetadata(fs[2], &rec.Metadata); err != nil {
				return out[:len(out)-1], fmt.Errorf("decode %d: event %d: metadata: %w", seq, i, err)
			}
		}
	}
	return out, nil
}

// typeNames holds the catalogue's stored type names, so decoding a
// message's events allocates no string for their types. It is read-only
// once built.
var typeNames = func() map[string]string {
	m := map[string]string{}
	for _, base := range events.Types() {
		t := events.VersionedType(base)
		m[t] = t
	}
	return m
}()

// typeName returns b as a string, the catalogue's when it names one of
// its types.
func typeName(b []byte) string {
	if t, ok := typeNames[string(b)]; ok {
		return t
	}
	return string(b)
}

// Subjects: ev.<category>.<stream id>.<organisation>. ValidateStream keeps
// the stream's parts to letters, digits, '-' and '_', so each is one
// subject token; the category holds no '-', so the stream name comes back
// unambiguously. The organisation token lets the server itself select an
// organisation's events (ev.run.*.<org>), so reading one organisation's
// history costs nothing in the others' events' transfer and decoding.
const subjectPrefix = "ev."

func subject(stream, org string) string {
	return subjectPrefix + events.Category(stream) + "." + events.StreamID(stream) + "." + orgToken(org)
}

// streamSubjects matches every message of stream, whatever its
// organisation token.
func streamSubjects(stream string) string {
	return subjectPrefix + events.Category(stream) + "." + events.StreamID(stream) + ".*"
}

// orgToken is an organisation id as one subject token: the id itself when
// it is made of letters, digits, '-' and '_' (at most 64 of them); "=" for
// none; else "=" and its hex, which no plain id can be.
func orgToken(org string) string {
	if org == "" {
		return "="
	}
	if len(org) <= 64 && strings.IndexFunc(org, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) < 0 {
		return org
	}
	return "=" + hex.EncodeToString([]byte(org))
}

func streamOf(subj string) (string, bool) {
	cat, id, _, ok := subjectParts(subj)
	return cat + "-" + id, ok
}

// subjectParts splits a message's subject, ev.<category>.<id>.<org>.
func subjectParts(subj string) (cat, id, org string, ok bool) {
	rest, ok := strings.CutPrefix(subj, subjectPrefix)
	if !ok {
		return "", "", "", false
	}
	cat, rest, ok = strings.Cut(rest, ".")
	if !ok {
		return "", "", "", false
	}
	id, org, ok = strings.Cut(rest, ".")
	return cat, id, org, ok
}
