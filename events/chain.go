package events

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// A run stream is a hash chain. Each event's link is the SHA-256 of the
// canonical encoding of its type, data and metadata; its metadata holds
// Prev, the link of the event before it, so a link commits to the whole
// stream up to it. A terminal event (RunCompleted, RunFailed,
// RunCancelled) also carries Seal, its own link computed with Seal and
// SealSig empty, and, when the node has a seal key, SealSig, an Ed25519
// signature of Seal. CheckChain recomputes every link from the stored
// records: an event rewritten or removed behind Spectra's back breaks the
// link of the event after it.
//
// The canonical encoding is a domain tag, then type, data and the JSON of
// the metadata, each preceded by its length as a uvarint. The data is the
// stored bytes; the metadata's JSON is that of Metadata (fields in
// declaration order), so a store that keeps the metadata's fields keeps
// its link whatever bytes it stored them as.

const chainTag = "spectra-chain/v1\n"

// Link returns the chain link of an event: hex SHA-256 over the canonical
// encoding of typ, data and md.
func Link(typ string, data []byte, md Metadata) string {
	var buf [512]byte
	mdJSON, ok := appendMetadataJSON(buf[:0], &md)
	if !ok {
		var err error
		if mdJSON, err = json.Marshal(md); err != nil {
			// Metadata holds only strings: it always encodes.
			panic(fmt.Sprintf("events.Link: encode metadata: %v", err))
		}
	}
	h := sha256.New()
	h.Write([]byte(chainTag))
	var n [binary.MaxVarintLen64]byte
	for _, f := range [][]byte{[]byte(typ), data, mdJSON} {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RecordLink is the chain link of a stored record.
func RecordLink(rec Record) string { return Link(rec.Type, rec.Data, rec.Metadata) }

// sealLink is the link of an event as it was sealed: without its seal.
func sealLink(typ string, data []byte, md Metadata) string {
	md.Seal, md.SealSig = "", ""
	return Link(typ, data, md)
}

// Seals reports whether events of type typ (stored or base name) seal
// their stream's chain: the terminal events of a run's job.
func Seals(typ string) bool {
	switch BaseType(typ) {
	case TypeRunCompleted, TypeRunFailed, TypeRunCancelled:
		return true
	}
	return false
}

// Chain links evs, about to be appended in this order, onto prev, the link
// of the stream's last event ("" for a new stream): it sets each event's
// Metadata.Prev, and seals each terminal event (signing the seal when key
// is not nil). It returns the link of the last event.
func Chain(prev string, evs []Event, key ed25519.PrivateKey) string {
	for i := range evs {
		md := &evs[i].Metadata
		md.Prev, md.Seal, md.SealSig = prev, "", ""
		if Seals(evs[i].Type) {
			md.Seal = Link(evs[i].Type, evs[i].Data, *md)
			if key != nil {
				md.SealSig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(md.Seal)))
			}
		}
		prev = Link(evs[i].Type, evs[i].Data, *md)
	}
	return prev
}

// Break kinds.
const (
	// BreakLink: the event does not name its predecessor's link: the
	// event before it was rewritten, or events between them were removed.
	BreakLink = "link"
	// BreakGap: the stream's revisions skip: events were removed.
	BreakGap = "gap"
	// BreakUnchained: an event after the chain began carries no link
	// (inserted, or its metadata stripped).
	BreakUnchained = "unchained"
	// BreakSeal: a terminal event's seal is not its link: it was rewritten.
	BreakSeal = "seal"
	// BreakSignature: a seal's signature does not verify with the key.
	BreakSignature = "signature"
	// BreakUnsigned: a key was given but the seal carries no signature.
	BreakUnsigned = "unsigned"
)

// Break is one broken link of a stream's chain.
type Break struct {
	Revision uint64 `json:"revision"`
	Type     string `json:"type"`
	Kind     string `json:"kind"`
	Message  string `json:"message"`
}

// ChainReport is what CheckChain found.
type ChainReport struct {
	// Events is the number of records checked; Linked how many carry a
	// link to their predecessor.
	Events int `json:"events"`
	Linked int `json:"linked"`
	// Seals counts the sealed terminal events, Signed the seals whose
	// signature verified with the key given.
	Seals  int `json:"seals"`
	Signed int `json:"signed"`
	// Sealed reports whether the stream ends with a valid seal: nothing
	// after its last terminal event.
	Sealed bool `json:"sealed"`
	// Head is the link of the last record.
	Head string `json:"head"`
	// Breaks lists every broken link, in stream order; empty when the
	// chain holds.
	Breaks []Break `json:"breaks"`
}

// Intact reports whether the chain holds: links were found and none broke.
func (r ChainReport) Intact() bool { return r.Linked > 0 && len(r.Breaks) == 0 }

// CheckChain recomputes the links of a stream's records (in revision
// order, as ReadStream returns them) and reports every break. After a
// break it carries on from the stored record, so a second edit further on
// is reported too. Records before the first linked one (a log written
// before chains) are counted but not checked. pub, when not nil, verifies
// every seal's signature.
func CheckChain(recs []Record, pub ed25519.PublicKey) ChainReport {
	rep := ChainReport{Events: len(recs), Breaks: []Break{}}
	prev := ""
	started := false
	for i, rec := range recs {
		md := rec.Metadata
		brk := func(kind, format string, args ...any) {
			rep.Breaks = append(rep.Breaks, Break{Revision: rec.Revision, Type: BaseType(rec.Type), Kind: kind,
				Message: fmt.Sprintf(format, args...)})
		}
		if i > 0 && rec.Revision != recs[i-1].Revision+1 {
			brk(BreakGap, "revision %d follows revision %d: %d event(s) removed",
				rec.Revision, recs[i-1].Revision, rec.Revision-recs[i-1].Revision-1)
		}
		switch {
		case md.Prev != "":
			started = true
			rep.Linked++
			if i == 0 {
				brk(BreakLink, "the stream's first event links to a predecessor: the events before it were removed")
			} else if md.Prev != prev {
				brk(BreakLink, "revision %d does not link to revision %d as stored: an event before it was rewritten or removed",
					rec.Revision, recs[i-1].Revision)
			}
		case started:
			brk(BreakUnchained, "revision %d carries no link although the chain began before it", rec.Revision)
		}
		if md.Seal != "" || Seals(rec.Type) && started {
			switch {
			case md.Seal == "":
				brk(BreakSeal, "terminal event at revision %d carries no seal", rec.Revision)
			case md.Seal != sealLink(rec.Type, rec.Data, md):
				brk(BreakSeal, "the seal at revision %d is not the event's link: the event was rewritten", rec.Revision)
			default:
				rep.Seals++
				switch {
				case pub == nil:
				case md.SealSig == "":
					brk(BreakUnsigned, "the seal at revision %d is not signed", rec.Revision)
				case !validSig(pub, md.Seal, md.SealSig):
					brk(BreakSignature, "the seal's signature at revision %d does not verify with the public key", rec.Revision)
				default:
					rep.Signed++
				}
			}
		}
		prev = RecordLink(rec)
	}
	rep.Head = prev
	if n := len(recs); n > 0 {
		last := recs[n-1]
		rep.Sealed = last.Metadata.Seal != "" && last.Metadata.Seal == sealLink(last.Type, last.Data, last.Metadata)
	}
	return rep
}

func validSig(pub ed25519.PublicKey, seal, sig string) bool {
	b, err := base64.StdEncoding.DecodeString(sig)
	return err == nil && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, []byte(seal), b)
}

// ParseSealKey reads an Ed25519 private key for signing seals: its 32-byte
// seed or its 64-byte key, in hex or base64, surrounding space ignored.
func ParseSealKey(text string) (ed25519.PrivateKey, error) {
	b, err := decodeKey(text)
	switch {
	case err != nil:
		return nil, err
	case len(b) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case len(b) == ed25519.PrivateKeySize:
		return ed25519.PrivateKey(b), nil
	}
	return nil, fmt.Errorf("seal key: %d bytes, want an Ed25519 seed (%d) or private key (%d)", len(b), ed25519.SeedSize, ed25519.PrivateKeySize)
}

// ParsePublicKey reads an Ed25519 public key in hex or base64.
func ParsePublicKey(text string) (ed25519.PublicKey, error) {
	b, err := decodeKey(text)
	if err != nil {
		return nil, err
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key: %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

func decodeKey(text string) ([]byte, error) {
	s := strings.TrimSpace(text)
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return nil, fmt.Errorf("key: neither hex nor base64")
}

// appendMetadataJSON appends json.Marshal's bytes of md to b without
// reflection (every event's link encodes its metadata, twice for a sealed
// one). It reports false when a field is not plain printable ASCII
// without the characters json.Marshal escapes; Link then uses
// json.Marshal (TestMetadataJSONMatchesMarshal).
func appendMetadataJSON(b []byte, md *Metadata) ([]byte, bool) {
	b = append(b, '{')
	first := true
	for _, f := range [...]struct {
		name, v string
	}{
		{`"org_id":"`, md.OrgID}, {`"user_id":"`, md.UserID}, {`"role":"`, md.Role},
		{`"request_id":"`, md.RequestID}, {`"correlation_id":"`, md.CorrelationID},
		{`"causation_id":"`, md.CausationID}, {`"node":"`, md.Node}, {`"trace_id":"`, md.TraceID},
		{`"span_id":"`, md.SpanID}, {`"prev":"`, md.Prev}, {`"seal":"`, md.Seal}, {`"seal_sig":"`, md.SealSig},
	} {
		if f.v == "" {
			continue // omitempty
		}
		for i := 0; i < len(f.v); i++ {
			if c := f.v[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return b, false
			}
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.name...)
		b = append(b, f.v...)
		b = append(b, '"')
	}
	return append(b, '}'), true
}
