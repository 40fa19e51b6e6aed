package events_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/spectra-fab/spectra/events"
)

func chained(t testing.TB, key ed25519.PrivateKey) []events.Record {
	t.Helper()
	ps := []events.Payload{&events.RunQueued{JobID: "j", Queue: "ion"}, &events.RunStarted{JobID: "j", Seed: 1},
		&events.RunCompleted{JobID: "j", Step: 3, Result: []byte(`{}`)}}
	evs := make([]events.Event, len(ps))
	for i, p := range ps {
		ev, err := events.New(p, events.Metadata{OrgID: "org-1"})
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	events.Chain("", evs, key)
	recs := make([]events.Record, len(evs))
	for i, ev := range evs {
		recs[i] = events.Record{ID: ev.ID, Stream: "run-1", Revision: uint64(i), Type: ev.Type, Data: ev.Data, Metadata: ev.Metadata}
	}
	return recs
}

func TestChainSealsAndSigns(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	recs := chained(t, key)
	rep := events.CheckChain(recs, pub)
	if !rep.Intact() || !rep.Sealed || rep.Seals != 1 || rep.Signed != 1 || rep.Linked != 2 {
		t.Fatalf("CheckChain = %+v, want intact, sealed, one signed seal, two links", rep)
	}
	// The seed, in hex, is a seal key; its public key checks the seal.
	k2, err := events.ParseSealKey(hex.EncodeToString(key.Seed()))
	if err != nil || !k2.Equal(key) {
		t.Fatalf("ParseSealKey(seed) = %v, %v", k2, err)
	}
	p2, err := events.ParsePublicKey(hex.EncodeToString(pub))
	if err != nil || !p2.Equal(pub) {
		t.Fatalf("ParsePublicKey = %v, %v", p2, err)
	}
	// Stripping a link is reported; so is a seal on a rewritten event.
	recs[1].Metadata.Prev = ""
	recs[2].Data = []byte(`{"job_id":"j","step":4,"process_time_s":0,"result":{}}`)
	kinds := map[string]bool{}
	for _, b := range events.CheckChain(recs, pub).Breaks {
		kinds[b.Kind] = true
	}
	if !kinds[events.BreakUnchained] && !kinds[events.BreakLink] || !kinds[events.BreakSeal] {
		t.Errorf("CheckChain(edited) breaks = %v, want a link break and a seal break", kinds)
	}
}

// BenchmarkLink: the cost the chain adds to an append, per event, for a
// telemetry batch of 10 samples × 12 columns.
func BenchmarkLink(b *testing.B) {
	cols := map[string][]float64{}
	for c := range 12 {
		for i := range 10 {
			cols[fmt.Sprintf("col_%02d", c)] = append(cols[fmt.Sprintf("col_%02d", c)], float64(i)*1.234567891+float64(c))
		}
	}
	ev, _ := events.New(&events.TelemetryRecorded{JobID: "j", Samples: cols, Progress: 42}, events.Metadata{OrgID: "org-1", UserID: "u"})
	b.SetBytes(int64(len(ev.Data)))
	for b.Loop() {
		events.Link(ev.Type, ev.Data, ev.Metadata)
	}
}
