package events

import (
	"bytes"
	"encoding/json"
	"math"
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

// telemetryValues are payloads whose encoding must be json.Marshal's.
var telemetryValues = []TelemetryRecorded{
	{JobID: "job-1", Attempt: 2, FirstStep: 40, Progress: 37.5, CurrentStep: "Implanting (37% dose)",
		Samples: map[string][]float64{"time_s": {4.1, 4.2}, "beam_current_ma": {5.0000001, -1e-9}, "empty": {}, "null": nil}},
	{},
	{Samples: map[string][]float64{}},
	{JobID: "j", Attempt: -9, FirstStep: 1 << 40, Progress: -0.0,
		Samples: map[string][]float64{"x": {1e308, 5e-324, 1e21, 9.999999999999999e20, 1e-6, 9.99e-7, 1e-7, -1e-100, 123456789.125, 0.1, 1e20}}},
	{JobID: "a<b", CurrentStep: "x"},
	{JobID: "j", CurrentStep: "Ramp ↑"},
	{JobID: "j", CurrentStep: "q\"uote"},
	{JobID: "j", CurrentStep: "tab\t"},
	{JobID: "j", Samples: map[string][]float64{"a&b": {1}}},
	{JobID: "j", Samples: map[string][]float64{"n": {math.NaN()}}},
	{JobID: "j", Progress: math.Inf(1)},
}

func TestEncodeTelemetryMatchesMarshal(t *testing.T) {
	for i, v := range telemetryValues {
		want, wantErr := json.Marshal(&v)
		ev, err := NewWithID("id", &v, Metadata{})
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("case %d: NewWithID error %v, json.Marshal's %v", i, err, wantErr)
		}
		if err == nil && !bytes.Equal(ev.Data, want) {
			t.Fatalf("case %d: NewWithID wrote\n%s\njson.Marshal writes\n%s", i, ev.Data, want)
		}
		if fast, ok := encodeTelemetry(nil, &v); ok && !bytes.Equal(fast, want) {
			t.Fatalf("case %d: encodeTelemetry wrote\n%s\njson.Marshal writes\n%s", i, fast, want)
		}
	}
	// The common form takes the fast path.
	if _, ok := encodeTelemetry(nil, &telemetryValues[0]); !ok {
		t.Fatal("encodeTelemetry refused a plain batch")
	}
}

// FuzzEncodeTelemetry: what encodeTelemetry writes is json.Marshal's bytes.
func FuzzEncodeTelemetry(f *testing.F) {
	f.Add("job-1", 1, 40, "time_s", 4.1, 5e-7, 37.5, "Implanting")
	f.Add("", 0, 0, "", 0.0, -0.0, 1e21, "é")
	f.Fuzz(func(t *testing.T, job string, attempt, first int, name string, a, b, progress float64, step string) {
		v := TelemetryRecorded{JobID: job, Attempt: attempt, FirstStep: first, Progress: progress, CurrentStep: step,
			Samples: map[string][]float64{name: {a, b}, "z" + name: {b}}}
		got, ok := encodeTelemetry(nil, &v)
		if !ok {
			return
		}
		want, err := json.Marshal(&v)
		if err != nil {
			t.Fatalf("encodeTelemetry took %#v, json.Marshal refuses it: %v", v, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encodeTelemetry wrote\n%s\njson.Marshal writes\n%s", got, want)
		}
	})
}

func BenchmarkEncodeTelemetry(b *testing.B) {
	v := &TelemetryRecorded{JobID: "job-0123456789", FirstStep: 40, Progress: 37.5, CurrentStep: "Implanting (37% dose)", Samples: map[string][]float64{}}
	for _, name := range []string{"time_s", "beam_current_ma", "pressure_torr", "analyzer_v", "dose_atoms_cm2", "dose_uniformity_pct", "wafer_temp_c"} {
		col := make([]float64, 10)
		for i := range col {
			col[i] = 1.2345678901234567e-3 * float64(i+1) * float64(len(name))
		}
		v.Samples[name] = col
	}
	b.Run("NewWithID", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NewWithID("id", v, Metadata{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json_Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzMetadataJSON: MetadataJSON writes json.Marshal's bytes
// (TestMetadataJSONMatchesMarshal checks appendMetadataJSON).
func FuzzMetadataJSON(f *testing.F) {
	f.Add("org-1", "user", "", "ab12", "<&>")
	f.Fuzz(func(t *testing.T, org, user, node, prev, sig string) {
		md := Metadata{OrgID: org, UserID: user, Node: node, Prev: prev, SealSig: sig}
		want, _ := json.Marshal(md)
		got, err := MetadataJSON(md)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("MetadataJSON(%#v) = %s, %v; json.Marshal writes %s", md, got, err, want)
		}
	})
}
