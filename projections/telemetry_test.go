package projections

import (
	"encoding/json"
	"testing"
)

var scanCases = []struct {
	name string
	data string
	fast bool
}{
	{"as_marshalled", `{"job_id":"job-1","attempt":0,"first_step":40,"samples":{"beam_current_ma":[5,5.01],"time_s":[4.1,4.2],"z":[]},"progress":37.5,"current_step":"Implanting"}`, true},
	{"no_samples", `{"job_id":"j","attempt":0,"first_step":0,"samples":{},"progress":0,"current_step":""}`, true},
	{"empty_times", `{"samples":{"time_s":[]},"progress":1}`, true},
	{"other_values_skipped", `{"job_id":{"a":[true,false,null,"\u00e9\n"]},"attempt":"x","samples":{"x":{"y":[1e999]}}}`, true},
	{"long_time", `{"samples":{"time_s":[123456789012345678901234567890.5]}}`, true},
	{"whitespace", " { \"progress\" : 2 , \"samples\" : { \"time_s\" : [ 1 , 2 ] } } ", true},

	{"time_exponent", `{"samples":{"time_s":[1e400]}}`, false},
	{"time_null", `{"samples":{"time_s":null}}`, false},
	{"time_element_null", `{"samples":{"time_s":[1,null]}}`, false},
	{"times_in_other_case", `{"samples":{"TIME_S":[9]}}`, false},
	{"samples_null", `{"samples":null}`, false},
	{"progress_in_other_case", `{"PROGRESS":9}`, false},
	{"progress_overflow", `{"progress":1e400}`, false},
	{"progress_null", `{"progress":null}`, false},
	{"step_escaped", `{"current_step":"Ramp\u0020up"}`, false},
	{"step_utf8", `{"current_step":"Ramp ↑"}`, false},
	{"duplicate_progress", `{"progress":1,"progress":2}`, false},
	{"duplicate_times", `{"samples":{"time_s":[1],"time_s":[2]}}`, false},
	{"unknown_name", `{"extra":1}`, false},
	{"invalid_skipped_value", `{"job_id":[1,]}`, false},
	{"invalid_escape", `{"job_id":"\x"}`, false},
	{"control_character", "{\"job_id\":\"\t\"}", false},
	{"trailing", `{"progress":1}]`, false},
	{"null", `null`, false},
}

// fieldsOf decodes a batch as the model did before scanTelemetry: with
// encoding/json.
func fieldsOf(data []byte) (telemetryFields, bool) {
	var e telemetryProgress
	if err := json.Unmarshal(data, &e); err != nil {
		return telemetryFields{}, false
	}
	f := telemetryFields{progress: e.Progress, step: []byte(e.CurrentStep), times: len(e.Samples.TimeS) > 0}
	if f.times {
		f.lastTime = e.Samples.TimeS[len(e.Samples.TimeS)-1]
	}
	return f, true
}

func sameFields(a, b telemetryFields) bool {
	return a.progress == b.progress && string(a.step) == string(b.step) && a.times == b.times && (!a.times || a.lastTime == b.lastTime)
}

func TestScanTelemetryMatchesEncodingJSON(t *testing.T) {
	for _, c := range scanCases {
		t.Run(c.name, func(t *testing.T) {
			var got telemetryFields
			if ok := scanTelemetry([]byte(c.data), &got); ok != c.fast {
				t.Fatalf("scanTelemetry(%q) = %v, want %v", c.data, ok, c.fast)
			}
			if !c.fast {
				return
			}
			want, ok := fieldsOf([]byte(c.data))
			if !ok {
				t.Fatalf("scanTelemetry took %q, encoding/json refuses it", c.data)
			}
			if !sameFields(got, want) {
				t.Errorf("scanTelemetry(%q) = %+v, encoding/json gives %+v", c.data, got, want)
			}
		})
	}
}

// FuzzScanTelemetry: whatever scanTelemetry takes, encoding/json takes
// too, with the same fields.
func FuzzScanTelemetry(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got telemetryFields
		if !scanTelemetry(data, &got) {
			return
		}
		want, ok := fieldsOf(data)
		if !ok {
			t.Fatalf("scanTelemetry took %q, encoding/json refuses it", data)
		}
		if !sameFields(got, want) {
			t.Fatalf("scanTelemetry(%q) = %+v, encoding/json gives %+v", data, got, want)
		}
	})
}
