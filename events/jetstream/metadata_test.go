package jetstream

import (
	"encoding/json"
	"testing"

	"github.com/spectra-fab/spectra/events"
)

// decodeMetadata gives what encoding/json gives, on the fast path and off
// it.
func TestDecodeMetadata(t *testing.T) {
	mds := []events.Metadata{
		{},
		{OrgID: "org-1"},
		{OrgID: "org-1", UserID: "u-1", Role: "engineer", RequestID: "r-1", CorrelationID: "c", CausationID: "d",
			Node: "n1", TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", Prev: "p", Seal: "s", SealSig: "sig"},
		{OrgID: "org\"quote", UserID: "u\\back", Role: "<html>&"},
		{OrgID: "orgé", UserID: "\x01\n", Node: "\u2028"},
		{OrgID: string([]byte{0xff, 'a'})}, // invalid UTF-8: encoding/json replaces it
	}
	for _, md := range mds {
		raw, err := json.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		var want, got events.Metadata
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		got = events.Metadata{UserID: "stale"}
		if err := decodeMetadata(raw, &got); err != nil || got != want {
			t.Errorf("decodeMetadata(%s) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, raw := range []string{
		`{"org_id":"a","unknown":"x"}`, `{"org_id": "a"}`, `{"org_id":null}`, `{"org_id":"a",}`,
		`{"org_id":"a"} `, `{}`, `{"org_id":"a","org_id":"b"}`, `{"org_id":1}`,
	} {
		var want, got events.Metadata
		werr := json.Unmarshal([]byte(raw), &want)
		gerr := decodeMetadata([]byte(raw), &got)
		if (werr == nil) != (gerr == nil) || (werr == nil && got != want) {
			t.Errorf("decodeMetadata(%s) = %+v, %v; encoding/json: %+v, %v", raw, got, gerr, want, werr)
		}
	}
}

func BenchmarkDecodeMetadata(b *testing.B) {
	raw, _ := json.Marshal(events.Metadata{OrgID: "org-1", UserID: "u-1", Role: "engineer", CorrelationID: "c-123456",
		CausationID: "d-123456", Node: "node-1", Prev: "6a1f0f5c3c3b7d6e8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f"})
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			var md events.Metadata
			if err := decodeMetadata(raw, &md); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for range b.N {
			var md events.Metadata
			if err := json.Unmarshal(raw, &md); err != nil {
				b.Fatal(err)
			}
		}
	})
}
