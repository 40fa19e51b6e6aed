// Package jsonscan reads JSON text without reflection and without
// allocating: the hot event decoders (a telemetry batch is most of the
// log) walk a payload with it, take the few values they need and skip the
// rest, checking as they go that the text is JSON. A decoder that meets
// anything outside the form it expects (an escape in a key, a null, a
// duplicate name) gives up, and its caller decodes with encoding/json,
// so the fast path never has to match encoding/json's handling of the
// unusual.
//
//	s := jsonscan.New(data)
//	ok := s.Object(func(key []byte) bool {
//		switch string(key) {
//		case "progress":
//			n, ok := s.Number()
//			…
//		default:
//			return s.Skip()
//		}
//	}) && s.End()
package jsonscan

import (
	"bytes"
	"strconv"
)

// Scanner reads one JSON text. Its methods skip the whitespace before
// what they read and report false, consuming nothing sure, when the text
// does not hold what was asked for; after a false the scanner's position
// is unspecified and the caller gives up on the text.
type Scanner struct {
	b []byte
	i int
}

// New returns a scanner at the start of b.
func New(b []byte) Scanner { return Scanner{b: b} }

func (s *Scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// Peek returns the next byte after whitespace, or 0 at the end.
func (s *Scanner) Peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// Byte consumes c, the next byte after whitespace, and reports whether it
// was there.
func (s *Scanner) Byte(c byte) bool {
	if s.Peek() == c {
		s.i++
		return true
	}
	return false
}

// End reports whether only whitespace is left.
func (s *Scanner) End() bool {
	s.ws()
	return s.i == len(s.b)
}

// Key reads an object member's name and its colon. It reports false for
// anything but a plain string (printable ASCII, no escapes): such a name
// could spell a known one in escapes.
func (s *Scanner) Key() ([]byte, bool) {
	k, ok := s.Plain()
	if !ok || !s.Byte(':') {
		return nil, false
	}
	return k, true
}

// Object reads an object, calling member with each member's name (a
// plain string, see Key) and the scanner at its value, which member must
// read or skip. It reports false when member does, or when the text is
// not such an object.
func (s *Scanner) Object(member func(key []byte) bool) bool {
	if !s.Byte('{') {
		return false
	}
	if s.Byte('}') {
		return true
	}
	for {
		k, ok := s.Key()
		if !ok || !member(k) {
			return false
		}
		if !s.Byte(',') {
			return s.Byte('}')
		}
	}
}

// Array reads an array, calling element with the scanner at each element,
// which element must read or skip. It reports false when element does, or
// when the text is not an array.
func (s *Scanner) Array(element func() bool) bool {
	if !s.Byte('[') {
		return false
	}
	if s.Byte(']') {
		return true
	}
	for {
		if !element() {
			return false
		}
		if !s.Byte(',') {
			return s.Byte(']')
		}
	}
}

// Plain reads a string of printable ASCII without escapes and returns its
// content; false for any other value, or any other string.
func (s *Scanner) Plain() ([]byte, bool) {
	if !s.Byte('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// Number reads a number and returns its text, which has JSON's grammar
// (so strconv parses it as encoding/json does); false for any other
// value.
func (s *Scanner) Number() ([]byte, bool) {
	s.ws()
	start := s.i
	if !s.number() {
		return nil, false
	}
	return s.b[start:s.i], true
}

// number consumes -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *Scanner) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	s.i = i
	return true
}

// Float reads a number into a float64 as encoding/json does; false for
// any other value, or a number out of range.
func (s *Scanner) Float() (float64, bool) {
	lit, ok := s.Number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	return v, err == nil
}

// Int reads an integer into an int as encoding/json does; false for any
// other value (a fraction or exponent included), or one out of range.
func (s *Scanner) Int() (int, bool) {
	lit, ok := s.Number()
	if !ok || bytes.ContainsAny(lit, ".eE") {
		return 0, false
	}
	n, err := strconv.ParseInt(string(lit), 10, strconv.IntSize)
	return int(n), err == nil
}

// Int64 reads an integer into an int64 as encoding/json does; false for
// any other value (a fraction or exponent included), or one out of range.
func (s *Scanner) Int64() (int64, bool) {
	lit, ok := s.Number()
	if !ok || bytes.ContainsAny(lit, ".eE") {
		return 0, false
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	return n, err == nil
}

// Raw consumes one value of any kind, checking it as Skip does, and
// returns its text without the whitespace around it: what encoding/json
// hands a json.RawMessage or an Unmarshaler.
func (s *Scanner) Raw() ([]byte, bool) {
	s.ws()
	start := s.i
	if !s.Skip() {
		return nil, false
	}
	return s.b[start:s.i], true
}

// maxDepth bounds the nesting Skip follows; deeper text is left to
// encoding/json.
const maxDepth = 64

// Skip consumes one value of any kind, checking that it is JSON.
func (s *Scanner) Skip() bool { return s.skip(0) }

func (s *Scanner) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch s.Peek() {
	case '"':
		return s.str()
	case '{':
		s.i++
		if s.Byte('}') {
			return true
		}
		for {
			if s.Peek() != '"' || !s.str() || !s.Byte(':') || !s.skip(depth+1) {
				return false
			}
			if s.Byte(',') {
				continue
			}
			return s.Byte('}')
		}
	case '[':
		s.i++
		if s.Byte(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if s.Byte(',') {
				continue
			}
			return s.Byte(']')
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

// Null consumes a null and reports whether it was there.
func (s *Scanner) Null() bool { return s.Peek() == 'n' && s.literal("null") }

func (s *Scanner) literal(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return false
	}
	s.i += len(w)
	return true
}

// str consumes a string at s.i (its opening quote), checking its escapes
// and that it holds no control characters. Other bytes are not checked:
// encoding/json accepts any, replacing invalid UTF-8.
func (s *Scanner) str() bool {
	b := s.b
	for i := s.i + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			i++
			if i >= len(b) {
				return false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				i += 4
			default:
				return false
			}
		}
	}
	return false
}

// Seen records which fields (one bit each, up to 64) a decoder has read,
// so that it can give up on a duplicate name, which encoding/json resolves
// its own way.
type Seen uint64

// First marks the field bit and reports whether it was not marked before.
func (s *Seen) First(bit uint64) bool {
	if uint64(*s)&bit != 0 {
		return false
	}
	*s |= Seen(bit)
	return true
}
