package jsonscan

import (
	"bytes"
	"encoding/json"
	"testing"
)

var texts = []string{
	`{"a":[1,-0.5e+3,true,false,null,"\u00e9\n\"",{}],"b":{"c":[]}}`, ` [ ] `, `"x"`, `0`, `-0`, `1E9`,
	`{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `"\x"`, "\"\t\"", `"\u12G4"`, `{"a" 1}`, `{1:2}`, `nul`, `[`, `{}}`, ``,
	"\"\xff\"",
}

// Skip then End takes exactly the JSON texts (nested less than maxDepth).
func TestSkipTakesJSON(t *testing.T) {
	for _, text := range texts {
		s := New([]byte(text))
		if got, want := s.Skip() && s.End(), json.Valid([]byte(text)); got != want {
			t.Errorf("Skip+End(%q) = %v, json.Valid = %v", text, got, want)
		}
	}
}

func FuzzSkip(f *testing.F) {
	for _, text := range texts {
		f.Add([]byte(text))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(data)
		got, want := s.Skip() && s.End(), json.Valid(data)
		if got && !want || !got && want && bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) < maxDepth {
			t.Fatalf("Skip+End(%q) = %v, json.Valid = %v", data, got, want)
		}
	})
}

func TestSeenFirst(t *testing.T) {
	var s Seen
	if !s.First(1) || !s.First(4) || s.First(1) || s.First(4) || !s.First(1<<63) {
		t.Errorf("Seen.First: a field reported first twice, or a new one not first (%b)", s)
	}
}

// Raw returns a value's text without the whitespace around it, as
// encoding/json hands it to a json.RawMessage.
func TestRawIsTheValuesText(t *testing.T) {
	for _, text := range texts {
		var want struct {
			V json.RawMessage `json:"v"`
		}
		werr := json.Unmarshal([]byte(`{"v":`+text+`}`), &want)
		s := New([]byte(text))
		got, ok := s.Raw()
		if ok = ok && s.End(); ok != (werr == nil) || ok && !bytes.Equal(got, want.V) {
			t.Errorf("Raw(%q) = %q, %v; encoding/json %q, %v", text, got, ok, want.V, werr)
		}
	}
}
