package projections_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// Runs pages by cursor (Before, a run's Seq) through filters by tool and
// lot: every matching run once, newest first, however many are created
// between two pages.
func TestRunsPageByCursorThroughToolAndLotFilters(t *testing.T) {
	s := memory.New()
	jobs := projections.NewJobStatus()
	r := startRunner(t, s, nil, jobs)
	request := func(i int) uint64 {
		id := fmt.Sprintf("ION-20261203-%08d", i)
		lot := fmt.Sprintf("LOT-%d", i%3)
		tool := []string{"IMP-1", "IMP-2"}[i%2]
		return appendRun(t, s, id, md, &events.RunRequested{RunID: id, JobID: fmt.Sprint("job-", i), Kind: process.KindIon, ToolID: tool,
			Recipe: json.RawMessage(`{"species":"P","tool_id":"` + tool + `","lot_id":"` + lot + `"}`), CreatedAt: time.Unix(int64(100+i), 0).UTC()})
	}
	var pos uint64
	for i := range 12 {
		pos = request(i)
	}
	_ = r.WaitFor(t.Context(), pos)

	// Lot LOT-1 on tool IMP-2: runs 1, 7 (i%3 == 1, i odd). Other runs
	// merely containing "LOT-1" elsewhere are not in it.
	f := projections.RunFilter{OrgID: "org-1", ToolID: "IMP-2", LotID: "LOT-1"}
	got, total, _ := jobs.Runs(t.Context(), f)
	if total != 2 || len(got) != 2 || got[0].RunID != "ION-20261203-00000007" || got[1].RunID != "ION-20261203-00000001" {
		t.Errorf("tool IMP-2, lot LOT-1 = %d of %d: %v", len(got), total, ids(got))
	}

	// Pages of 4 of all twelve, with three runs created after the first page.
	f = projections.RunFilter{OrgID: "org-1", Limit: 4}
	var seen []string
	for page := 0; ; page++ {
		got, total, _ := jobs.Runs(t.Context(), f)
		if total < 12 {
			t.Fatalf("total = %d, want every matching run counted, the cursor aside", total)
		}
		seen = append(seen, ids(got)...)
		if page == 0 {
			for i := 12; i < 15; i++ {
				pos = request(i)
			}
			_ = r.WaitFor(t.Context(), pos)
		}
		if len(got) < f.Limit {
			break
		}
		f.Before = got[len(got)-1].Seq
	}
	if len(seen) != 12 || seen[0] != "ION-20261203-00000011" || seen[11] != "ION-20261203-00000000" {
		t.Errorf("paged by cursor: %v, want runs 11 down to 0 once each", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] >= seen[i-1] {
			t.Errorf("run %s after %s: not newest first, or repeated", seen[i], seen[i-1])
		}
	}
}

func ids(rs []projections.Run) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.RunID
	}
	return out
}

// BenchmarkRunsPage reads one page of 50 of 10,000 runs: the newest, one
// deep behind a cursor, and a lot filter (which decodes only the recipes
// that name the lot).
func BenchmarkRunsPage(b *testing.B) {
	s := memory.New()
	jobs := projections.NewJobStatus()
	r := startRunner(b, s, nil, jobs)
	var pos uint64
	for i := range 10000 {
		id := fmt.Sprintf("ION-20261203-%08d", i)
		ev, err := events.New(&events.RunRequested{RunID: id, JobID: fmt.Sprint("job-", i), Kind: process.KindIon, ToolID: fmt.Sprint("IMP-", i%7),
			Recipe:    json.RawMessage(fmt.Sprintf(`{"species":"P","energy_kev":40,"dose_atoms_cm2":1e15,"lot_id":"LOT-%d","wafer_id":"W%02d"}`, i/25, i%25)),
			CreatedAt: time.Unix(int64(i), 0).UTC()}, md)
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.Append(b.Context(), events.RunStream(id), events.ExpectAny, ev)
		if err != nil {
			b.Fatal(err)
		}
		pos = res.Position
	}
	_ = r.WaitFor(b.Context(), pos)
	for _, c := range []struct {
		name string
		f    projections.RunFilter
	}{
		{"newest", projections.RunFilter{OrgID: "org-1", Limit: 50}},
		{"cursor_at_half", projections.RunFilter{OrgID: "org-1", Limit: 50, Before: 5000}},
		{"tool", projections.RunFilter{OrgID: "org-1", Limit: 50, ToolID: "IMP-3"}},
		{"lot", projections.RunFilter{OrgID: "org-1", Limit: 50, LotID: "LOT-200"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if rs, _, _ := jobs.Runs(b.Context(), c.f); len(rs) == 0 {
					b.Fatal("no runs")
				}
			}
		})
	}
}
