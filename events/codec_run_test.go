package events

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/process"
)

// runCases are payloads of the run types with a fast decoder that it must
// decode as encoding/json does (fast: it takes them), or leave to it.
var runCases = []struct {
	typ  string
	data string
	fast bool
}{
	{TypeRunRequested, mustMarshal(RunRequested{RunID: "ION-20261128-0000002A", JobID: "job-42", Kind: process.KindIon, ToolID: "IMP-2",
		Recipe: json.RawMessage(`{"species":"P","energy_kev":40, "dose_atoms_cm2":1e15}`), Priority: -3, Seed: -1 << 62,
		IdempotencyKey: "k-1", CreatedAt: time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.FixedZone("x", 3600))}), true},
	{TypeRunRequested, mustMarshal(RunRequested{Kind: "rtp", Recipe: json.RawMessage(`{}`)}), true},
	{TypeRunRequested, mustMarshal(RunRequested{Kind: "other", Recipe: json.RawMessage(`{"a":[1,{"b":null}]}`)}), true},
	{TypeRunRequested, ` { "run_id" : "r" , "recipe" : { "a" : 1 } , "created_at" : "2026-01-02T03:04:05Z" } `, true},
	{TypeRunRequested, `{"run_id":"r","recipe":null}`, false},             // RawMessage "null"
	{TypeRunRequested, `{"run_id":"r","recipe":[1]}`, false},              // not an object
	{TypeRunRequested, `{"run_id":"r","created_at":null}`, false},         // time.Time's rules
	{TypeRunRequested, `{"run_id":"r","created_at":"2026-01-02"}`, false}, // refused by time.Time
	{TypeRunRequested, `{"run_id":"r","created_at":"2026-01-02T03:04:05+23:59"}`, true},
	{TypeRunRequested, `{"run_id":"r","simulate_fault":{"kind":"beam_trip"}}`, false},
	{TypeRunRequested, `{"run_id":"r","origin":null}`, false},
	{TypeRunRequested, `{"Run_ID":"r"}`, false},                    // case-folded name
	{TypeRunRequested, `{"run_id":"r","run_id":"s"}`, false},       // duplicate
	{TypeRunRequested, `{"run_id":"caf\u00e9"}`, false},            // escape
	{TypeRunRequested, `{"run_id":"é"}`, false},                    // non-ASCII
	{TypeRunRequested, `{"priority":1.0}`, false},                  // refused by encoding/json
	{TypeRunRequested, `{"priority":99999999999999999999}`, false}, // out of range
	{TypeRunRequested, `{"seed":9223372036854775807,"priority":-9223372036854775808}`, true},
	{TypeRunRequested, `{"run_id":"r"} x`, false},
	{TypeRunRequested, `{"recipe":{"a":1}`, false},
	{TypeRunCompleted, mustMarshal(RunCompleted{JobID: "job-1", Step: 900, DurationS: 90.25,
		Result: json.RawMessage(`{"dose_error_pct":-0.2,"final_dose_atoms_cm2":9.98e14}`), R2R: json.RawMessage(`{"dose_error_pct":-0.2}`)}), true},
	{TypeRunCompleted, mustMarshal(RunCompleted{JobID: "job-1", Result: json.RawMessage(`{}`)}), true},
	{TypeRunCompleted, `{"job_id":"j","result":null}`, false},
	{TypeRunCompleted, `{"job_id":"j","result":{"a":"\u00e9"},"r2r_observations":{}}`, true},
	{TypeRunCompleted, `{"job_id":"j","process_time_s":1e400}`, false},
	{TypeRunCompleted, `{"job_id":"j","process_time_s":-0}`, true},
	{TypeRunCompleted, `{"job_id":"j","step":1e3}`, false},
	{TypeRunCompleted, `{"job_id":"j","result":{"a":1},"result":{"b":2}}`, false},
	{TypeRunCompleted, `{"job_id":"j","result":{"a":01}}`, false},
	{TypeRunCompleted, `{"job_id":"j","extra":1}`, false},
	{TypeRunQueued, mustMarshal(RunQueued{JobID: "job-1", Queue: "ion"}), true},
	{TypeRunQueued, `{"job_id":"j","queue":1}`, false},
	{TypeRunPhaseChanged, mustMarshal(RunPhaseChanged{JobID: "job-1", Name: "Controller set-up", Progress: 15, Step: 3}), true},
	{TypeRunPhaseChanged, `{"job_id":"j","name":"a\"b"}`, false},
	{TypeRunPhaseChanged, `{"job_id":"j","name":null}`, false},
	{TypeArtifactStored, mustMarshal(ArtifactStored{JobID: "job-1", Name: "telemetry.json", ContentType: "application/json", Size: 1000,
		URI: "s3://b/k"}), true},
	{TypeArtifactStored, `{"job_id":"j","size":-1,"uri":""}`, true},
	{TypeArtifactStored, `{"job_id":"j","size":"1"}`, false},
	{TypeArtifactStored, `[]`, false},
	{TypeArtifactStored, ``, false},
}

// decodeJSON decodes data as a typ with encoding/json.
func decodeJSON(typ string, data []byte) (Payload, error) {
	p := catalogue[typ].newFn()
	return p, json.Unmarshal(data, p)
}

func TestDecodeRunEventsMatchEncodingJSON(t *testing.T) {
	for _, c := range runCases {
		fast, ok := decodeRunFast(c.typ, []byte(c.data))
		if ok != c.fast {
			t.Errorf("%s fast decoder on %q: took it %v, want %v", c.typ, c.data, ok, c.fast)
		}
		want, wantErr := decodeJSON(c.typ, []byte(c.data))
		got, gotErr := Decode(Record{Type: VersionedType(c.typ), Data: []byte(c.data)})
		if (gotErr != nil) != (wantErr != nil) {
			t.Errorf("Decode %s %q: error %v, encoding/json's %v", c.typ, c.data, gotErr, wantErr)
			continue
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("Decode %s %q = %#v, encoding/json gives %#v", c.typ, c.data, got, want)
		}
		if ok && (wantErr != nil || !reflect.DeepEqual(fast, want)) {
			t.Errorf("%s fast decoder on %q = %#v, encoding/json gives %#v, %v", c.typ, c.data, fast, want, wantErr)
		}
	}
}

// FuzzDecodeRunEvents: whatever a fast decoder takes, encoding/json takes
// too, with the same result.
func FuzzDecodeRunEvents(f *testing.F) {
	types := []string{TypeRunRequested, TypeRunCompleted, TypeRunQueued, TypeRunPhaseChanged, TypeArtifactStored}
	for _, c := range runCases {
		for i, typ := range types {
			if typ == c.typ {
				f.Add(uint8(i), []byte(c.data))
			}
		}
	}
	f.Fuzz(func(t *testing.T, i uint8, data []byte) {
		typ := types[int(i)%len(types)]
		fast, ok := decodeRunFast(typ, data)
		if !ok {
			return
		}
		want, err := decodeJSON(typ, data)
		if err != nil {
			t.Fatalf("%s fast decoder took %q, encoding/json refuses it: %v", typ, data, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%s fast decoder on %q = %#v, encoding/json gives %#v", typ, data, fast, want)
		}
	})
}

func BenchmarkDecodeRunEvents(b *testing.B) {
	for _, c := range runCases[:1] {
		rec := Record{Type: VersionedType(c.typ), Data: []byte(c.data)}
		b.Run("Decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeJSON(c.typ, rec.Data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
