package api

import (
	"log/slog"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

// TestReplayYieldsToOtherOrganisations: a replay's pace drops to its
// floor while other organisations' live events arrive faster than
// ReplayYieldAbove, until they stayed slower for replayYieldWindow; its
// own organisation's live events do not slow it.
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
		org   string
		n     int // live events since the last page
		after time.Duration
		want  float64
	}{
		{"org-1", 5000, time.Second, 1000},        // its own organisation: no yield
		{"org-2", 100, time.Second, 1000},         // others at the threshold: no yield
		{"org-2", 11, 100 * time.Millisecond, 50}, // 110/s: the floor, 1000/20
		{"org-3", 4000, time.Second, 50},
		{"", 0, 500 * time.Millisecond, 50},       // quiet, but not for long enough
		{"org-2", 20, 400 * time.Millisecond, 50}, // 20 in 0.9 s: still quiet
		{"", 0, 100 * time.Millisecond, 1000},     // quiet for a second
	} {
		publish(c.org, c.n)
		t0 = t0.Add(c.after)
		if got := ss.replayRate(t0); got != c.want {
			t.Errorf("after %d live events of %q in %v: rate %v, want %v", c.n, c.org, c.after, got, c.want)
		}
	}
}

// TestRunReplayReadsWholePages: a run stream's replay reads ReplayPage
// events at once, first page included, and does not yield to other
// organisations (an organisation replay reads ReplayRate × replaySpan).
func TestRunReplayReadsWholePages(t *testing.T) {
	h := newHub(nil, func() uint64 { return 0 }, 8, slog.New(slog.DiscardHandler))
	cfg := StreamConfig{ReplayRate: 1000, ReplayYieldAbove: 100, ReplayPage: 500}.withDefaults()
	for range 1000 { // another organisation busy: an organisation replay would yield
		h.publish(events.Record{Stream: events.RunStream("ION-20260101-0000C001"), Metadata: events.Metadata{OrgID: "org-2"}})
	}
	run := &session{st: &streams{cfg: cfg}, h: h, req: &streamRequest{org: "org-1", run: &projections.Run{}}}
	org := &session{st: &streams{cfg: cfg}, h: h, req: &streamRequest{org: "org-1"}}
	for name, c := range map[string]struct {
		ss   *session
		want int
	}{"run": {run, 500}, "organisation": {org, 100}} {
		c.ss.paceAt = time.Now()
		if n, err := c.ss.page(); err != nil || n != c.want {
			t.Errorf("%s replay: first page %d events (%v), want %d", name, n, err, c.want)
		}
	}
	if wait := time.Until(run.paceAt); wait > 600*time.Millisecond {
		t.Errorf("run replay: next page in %v, want ReplayPage/ReplayRate (0.5 s)", wait)
	}
}
