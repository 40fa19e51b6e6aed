package jetstream

import (
	"encoding/json"

	"github.com/spectra-fab/spectra/events"
)

// decodeMetadata decodes an event's metadata (JSON, as encode wrote it
// with json.Marshal) into md, which it clears first. Every read decodes one per message, so the
// common form, an object of plain ASCII strings, is read here without
// reflection; anything else (escapes, other bytes, other value types,
// unknown names) goes to encoding/json, which gives the same result for
// the common form.
func decodeMetadata(raw []byte, md *events.Metadata) error {
	*md = events.Metadata{}
	if fastMetadata(raw, md) {
		return nil
	}
	*md = events.Metadata{}
	return json.Unmarshal(raw, md)
}

// fastMetadata decodes raw into md when raw is {"name":"value",…} with
// known names and values of printable ASCII without escapes; it reports
// false (md partly written) otherwise.
func fastMetadata(raw []byte, md *events.Metadata) bool {
	if len(raw) < 2 || raw[0] != '{' {
		return false
	}
	i := 1
	if raw[i] == '}' {
		return i+1 == len(raw)
	}
	for {
		ns, ne, ok := plainString(raw, i)
		if !ok || ne+1 >= len(raw) || raw[ne+1] != ':' {
			return false
		}
		vs, ve, ok := plainString(raw, ne+2)
		if !ok {
			return false
		}
		var f *string
		switch string(raw[ns:ne]) {
		case "org_id":
			f = &md.OrgID
		case "user_id":
			f = &md.UserID
		case "role":
			f = &md.Role
		case "request_id":
			f = &md.RequestID
		case "correlation_id":
			f = &md.CorrelationID
		case "causation_id":
			f = &md.CausationID
		case "node":
			f = &md.Node
		case "trace_id":
			f = &md.TraceID
		case "span_id":
			f = &md.SpanID
		case "prev":
			f = &md.Prev
		case "seal":
			f = &md.Seal
		case "seal_sig":
			f = &md.SealSig
		default:
			return false
		}
		*f = string(raw[vs:ve])
		i = ve + 1
		if i >= len(raw) {
			return false
		}
		switch raw[i] {
		case ',':
			i++
		case '}':
			return i+1 == len(raw)
		default:
			return false
		}
	}
}

// plainString finds the string starting at raw[i] (its opening quote):
// its content is raw[start:end] and raw[end] its closing quote. It
// reports false unless the content is printable ASCII without escapes.
func plainString(raw []byte, i int) (start, end int, ok bool) {
	if i >= len(raw) || raw[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(raw); j++ {
		switch c := raw[j]; {
		case c == '"':
			return i + 1, j, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return 0, 0, false
		}
	}
	return 0, 0, false
}
