package events

import (
	"encoding/json"
	"reflect"
	"testing"
)

// telemetryCases are telemetry payloads the fast path must decode as
// encoding/json does (fast: it takes them), or leave to it.
var telemetryCases = []struct {
	name string
	data string
	fast bool
}{
	{"as_marshalled", mustMarshal(TelemetryRecorded{JobID: "job-1", Attempt: 2, FirstStep: 40, Progress: 37.5, CurrentStep: "Implanting",
		Samples: map[string][]float64{"time_s": {4.1, 4.2}, "beam_current_ma": {5.0000001, -1e-9}, "empty": {}}}), true},
	{"zero", mustMarshal(TelemetryRecorded{}), true},
	{"extremes", `{"job_id":"","attempt":-9223372036854775808,"first_step":0,"samples":{"x":[1e308,-0.0,5E-324,0.1e+2]},"progress":100,"current_step":" ~"}`, true},
	{"whitespace", " {\t\"job_id\" : \"j\" ,\n\"samples\":{ \"a\" : [ 1 , 2 ] } }\r\n", true},
	{"empty_object", `{}`, true},
	{"empty_samples", `{"samples":{}}`, true},
	{"names_out_of_order", `{"current_step":"Done","samples":{"t":[1]},"progress":1,"first_step":3,"attempt":1,"job_id":"j"}`, true},

	{"escaped_string", `{"job_id":"j\u00e9"}`, false},
	{"utf8_string", `{"current_step":"Ramp ↑"}`, false},
	{"invalid_utf8", "{\"current_step\":\"\xff\"}", false},
	{"escaped_name", `{"job\u005fid":"j"}`, false},
	{"name_in_other_case", `{"Progress":3}`, false},
	{"unknown_name", `{"progress":3,"extra":[1,{"a":null}]}`, false},
	{"duplicate_name", `{"progress":3,"progress":4}`, false},
	{"duplicate_sample", `{"samples":{"a":[1],"a":[2]}}`, false},
	{"duplicate_samples", `{"samples":{"a":[1]},"samples":{"b":[2]}}`, false},
	{"null_payload", `null`, false},
	{"null_field", `{"job_id":null}`, false},
	{"null_column", `{"samples":{"a":null}}`, false},
	{"null_sample", `{"samples":{"a":[1,null]}}`, false},
	{"fraction_attempt", `{"attempt":1.0}`, false},
	{"exponent_step", `{"first_step":1e2}`, false},
	{"overflow_int", `{"attempt":9223372036854775808}`, false},
	{"overflow_float", `{"progress":1e400}`, false},
	{"string_number", `{"progress":"3"}`, false},
	{"bool", `{"progress":true}`, false},
	{"leading_zero", `{"progress":01}`, false},
	{"bare_dot", `{"progress":1.}`, false},
	{"trailing_comma", `{"progress":1,}`, false},
	{"trailing_text", `{"progress":1} x`, false},
	{"two_values", `{}{}`, false},
	{"truncated", `{"samples":{"a":[1,2`, false},
	{"array", `[1]`, false},
	{"empty", ``, false},
}

func mustMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestDecodeTelemetryMatchesEncodingJSON(t *testing.T) {
	for _, c := range telemetryCases {
		t.Run(c.name, func(t *testing.T) {
			var fast TelemetryRecorded
			if got := decodeTelemetry([]byte(c.data), &fast); got != c.fast {
				t.Fatalf("decodeTelemetry(%q) = %v, want %v", c.data, got, c.fast)
			}
			rec := Record{Type: VersionedType(TypeTelemetryRecorded), Data: []byte(c.data)}
			got, gotErr := Decode(rec)
			var want TelemetryRecorded
			wantErr := json.Unmarshal([]byte(c.data), &want)
			if (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("Decode(%q) error = %v, encoding/json's = %v", c.data, gotErr, wantErr)
			}
			if gotErr == nil && !reflect.DeepEqual(got, &want) {
				t.Errorf("Decode(%q) = %#v, encoding/json gives %#v", c.data, got, &want)
			}
			if c.fast && !reflect.DeepEqual(&fast, &want) {
				t.Errorf("decodeTelemetry(%q) = %#v, encoding/json gives %#v", c.data, &fast, &want)
			}
		})
	}
}

// FuzzDecodeTelemetry: whatever the fast path takes, encoding/json takes
// too, with the same result.
func FuzzDecodeTelemetry(f *testing.F) {
	for _, c := range telemetryCases {
		f.Add([]byte(c.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast TelemetryRecorded
		if !decodeTelemetry(data, &fast) {
			return
		}
		var want TelemetryRecorded
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("decodeTelemetry took %q, encoding/json refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("decodeTelemetry(%q) = %#v, encoding/json gives %#v", data, fast, want)
		}
	})
}

func BenchmarkDecodeTelemetry(b *testing.B) {
	data := []byte(mustMarshal(TelemetryRecorded{JobID: "job-1", FirstStep: 40, Progress: 37.5, CurrentStep: "Implanting",
		Samples: map[string][]float64{
			"time_s":              {4.1, 4.2, 4.3, 4.4, 4.5, 4.6, 4.7, 4.8, 4.9, 5},
			"beam_current_ma":     {5, 5.01, 4.99, 5, 5.02, 4.98, 5, 5.01, 4.99, 5},
			"dose_uniformity_pct": {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5},
		}}))
	rec := Record{Type: VersionedType(TypeTelemetryRecorded), Data: data}
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
			var e TelemetryRecorded
			if err := json.Unmarshal(data, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
