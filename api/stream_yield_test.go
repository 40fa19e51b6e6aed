package api

import (
	"log/slog"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
)

// TestReplayYieldsToOtherOrganisations: a replay's pace drops with the
// rate of other organisations' live events above ReplayYieldAbove, to no
// less than the floor; its own organisation's live events do not slow it.
func TestReplayYieldsToOtherOrganisations(t *testing.T) {
	h := newHub(nil, func() uint64 { return 0 }, 8, slog.New(slog.DiscardHandler))
	cfg := StreamConfig{ReplayRate: 1000, ReplayYieldAbove: 100}.withDefaults()
	ss := &session{st: &streams{cfg: cfg}, h: h, req: &streamRequest{org: "org-1"}}
	publish := func(org string, n int) {
		for range n {
			h.publish(events.Record{Stream: events.RunStream("ION-20260101-0000C001"), Metadata: events.Metadata{OrgID: org}})
		}
	}
	t0 := time.Unix(1_000_000, 0)
	if got := ss.replayRate(t0); got != 1000 {
		t.Fatalf("first page: rate %v, want 1000", got)
	}
	for _, c := range []struct {
		org  string
		n    int // live events in the second since the last page
		want float64
	}{
		{"org-1", 5000, 1000}, // its own organisation: no yield
		{"org-2", 100, 1000},  // others at the threshold: no yield
		{"org-2", 400, 250},   // 1000 × 100/400
		{"org-3", 4000, 50},   // the floor: 1000/20
		{"", 0, 1000},         // quiet again
	} {
		publish(c.org, c.n)
		t0 = t0.Add(time.Second)
		if got := ss.replayRate(t0); got != c.want {
			t.Errorf("after %d live events of %q in 1 s: rate %v, want %v", c.n, c.org, got, c.want)
		}
	}
}
