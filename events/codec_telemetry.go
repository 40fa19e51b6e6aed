package events

import (
	"math"
	"slices"
	"strconv"

	"github.com/spectra-fab/spectra/internal/jsonscan"
)

// Telemetry batches are nine in ten events of a run, and every reader of a
// run stream (the run actor applying what it appended, rebuilds, the
// stream's messages) decodes them, so they are read here without
// reflection. The fast path takes the form json.Marshal writes (plain
// ASCII strings, no nulls, each name once, exactly as tagged) and reports
// false for anything else, which Decode then hands to encoding/json: the
// result is the same either way (TestDecodeTelemetryMatchesEncodingJSON,
// FuzzDecodeTelemetry).

// decodeTelemetry decodes data into e (zero) when it has the common form.
func decodeTelemetry(data []byte, e *TelemetryRecorded) bool {
	s := jsonscan.New(data)
	var seen jsonscan.Seen
	once := seen.First
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "job_id":
			v, ok := s.Plain()
			if !ok || !once(1) {
				return false
			}
			e.JobID = string(v)
		case "attempt":
			n, ok := s.Int()
			if !ok || !once(2) {
				return false
			}
			e.Attempt = n
		case "first_step":
			n, ok := s.Int()
			if !ok || !once(4) {
				return false
			}
			e.FirstStep = n
		case "progress":
			v, ok := s.Float()
			if !ok || !once(8) {
				return false
			}
			e.Progress = v
		case "current_step":
			v, ok := s.Plain()
			if !ok || !once(16) {
				return false
			}
			e.CurrentStep = string(v)
		case "samples":
			if !once(32) {
				return false
			}
			if s.Null() {
				return true
			}
			e.Samples = map[string][]float64{}
			return s.Object(func(name []byte) bool {
				if _, dup := e.Samples[string(name)]; dup {
					return false
				}
				var buf [16]float64 // a batch holds ten samples
				col := buf[:0]
				if !s.Array(func() bool {
					v, ok := s.Float()
					col = append(col, v)
					return ok
				}) {
					return false
				}
				e.Samples[string(name)] = append(make([]float64, 0, len(col)), col...)
				return true
			})
		default:
			// Another name, or one encoding/json would match without
			// regard to case: its rules apply.
			return false
		}
		return true
	}) && s.End()
}

// encodeTelemetry appends json.Marshal's bytes of e to b, without
// reflection: names in the struct's order, sample names sorted, floats
// as encoding/json formats them. It reports false for what it does not
// write exactly as json.Marshal would (a string outside plain printable
// ASCII or holding a character json.Marshal escapes, a NaN or an
// infinity), which NewWithID then hands to json.Marshal
// (TestEncodeTelemetryMatchesMarshal, FuzzEncodeTelemetry).
func encodeTelemetry(b []byte, e *TelemetryRecorded) ([]byte, bool) {
	if !plainJSON(e.JobID) || !plainJSON(e.CurrentStep) {
		return b, false
	}
	b = append(b, `{"job_id":"`...)
	b = append(b, e.JobID...)
	b = append(b, `","attempt":`...)
	b = strconv.AppendInt(b, int64(e.Attempt), 10)
	b = append(b, `,"first_step":`...)
	b = strconv.AppendInt(b, int64(e.FirstStep), 10)
	b = append(b, `,"samples":`...)
	if e.Samples == nil {
		b = append(b, "null"...)
	} else {
		var buf [16]string
		names := buf[:0]
		for name := range e.Samples {
			if !plainJSON(name) {
				return b, false
			}
			names = append(names, name)
		}
		slices.Sort(names)
		b = append(b, '{')
		for i, name := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, `":`...)
			col := e.Samples[name]
			if col == nil {
				b = append(b, "null"...)
				continue
			}
			b = append(b, '[')
			for k, v := range col {
				if k > 0 {
					b = append(b, ',')
				}
				var ok bool
				if b, ok = appendJSONFloat(b, v); !ok {
					return b, false
				}
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `,"progress":`...)
	b, ok := appendJSONFloat(b, e.Progress)
	if !ok {
		return b, false
	}
	b = append(b, `,"current_step":"`...)
	b = append(b, e.CurrentStep...)
	return append(b, `"}`...), true
}

// plainJSON reports whether json.Marshal writes s as it is between quotes:
// printable ASCII without '"', '\\' and the characters it escapes for
// HTML ('<', '>', '&').
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// appendJSONFloat appends v as encoding/json writes a float64; false for
// a NaN or an infinity, which it refuses.
func appendJSONFloat(b []byte, v float64) ([]byte, bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return b, false
	}
	f := byte('f')
	if abs := math.Abs(v); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		f = 'e'
	}
	b = strconv.AppendFloat(b, v, f, -1, 64)
	if f == 'e' {
		// e-09 → e-9, as encoding/json does.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// telemetrySize is about the bytes of e's JSON: a sample takes up to 24.
func telemetrySize(e *TelemetryRecorded) int {
	n := 96 + len(e.JobID) + len(e.CurrentStep)
	for name, col := range e.Samples {
		n += len(name) + 5 + 24*len(col)
	}
	return n
}
