package projections

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/spectra-fab/spectra/process"
)

// roundTrip is what the audit model did to every entry's details before
// plainJSON: a JSON round trip.
func roundTrip(details map[string]any) (map[string]any, error) {
	raw, err := json.Marshal(details)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	err = json.Unmarshal(raw, &out)
	return out, err
}

// checkPlainJSON fails t when plainJSON takes details and gives other
// values, or other types, than a JSON round trip.
func checkPlainJSON(t *testing.T, details func() map[string]any) {
	t.Helper()
	want, err := roundTrip(details())
	got := details()
	if !plainJSON(got) {
		return // the round trip's to do
	}
	if err != nil {
		t.Fatalf("plainJSON took %#v, which a round trip refuses: %v", details(), err)
	}
	if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
		t.Errorf("plainJSON(%#v) = %s, round trip %s", details(), g, w)
	}
}

func TestPlainJSONIsTheRoundTrip(t *testing.T) {
	for _, d := range []map[string]any{
		{"kind": process.KindIon, "priority": 3, "tool_id": "IMP-1"},
		{"kind": process.Kind("rtp"), "priority": -7, "tool_id": ""},
		{"step": 1<<62 + 1, "big": math.MaxInt64, "small": math.MinInt64}, // not every int is a float64
		{"x": math.Copysign(0, -1), "y": 1e-320, "z": math.MaxFloat64, "w": 0.1},
		{"reason": "<a href=\"x\">&</a>\u2028\u2029\x00é", "safe": true, "none": nil},
		{"bad": "\xff\xfe", "k": process.Kind("\xc0")},
		{"nan": math.NaN()}, {"inf": math.Inf(-1)},
		{"list": []string{"a"}}, {"n": int64(3)}, {"m": map[string]any{"a": 1}},
		{},
	} {
		checkPlainJSON(t, func() map[string]any {
			c := make(map[string]any, len(d))
			for k, v := range d {
				c[k] = v
			}
			return c
		})
	}
	if plainJSON(map[string]any{"bad": "\xff"}) || plainJSON(map[string]any{"nan": math.NaN()}) || plainJSON(map[string]any{"n": int64(1)}) {
		t.Error("plainJSON took a value whose round trip it does not know")
	}
}

func FuzzPlainJSON(f *testing.F) {
	f.Add("ion", "IMP-1", 5, 0.5, true)
	f.Add("\xff", "a\u2028", -1<<63, math.Copysign(0, -1), false)
	f.Fuzz(func(t *testing.T, kind, s string, n int, x float64, b bool) {
		checkPlainJSON(t, func() map[string]any {
			return map[string]any{"kind": process.Kind(kind), "s": s, "n": n, "x": x, "b": b, "nil": nil}
		})
	})
}
