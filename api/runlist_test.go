package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/spectra-fab/spectra/projections"
)

// GET /api/runs pages the organisation's runs by cursor, newest first,
// through filters by kind, status, tool and lot; a run created between two
// pages shifts nothing.
func TestRunPageByCursorAndFilters(t *testing.T) {
	st := newSecStack(t)
	eng := as(t, RoleEngineer, "org-1")
	var ids []string
	create := func(i int) {
		body := fmt.Sprintf(`{"steps":1,"tool_id":"IMP-%d","lot_id":"LOT-%d","wafer_id":"W%02d"}`, i%2, i%3, i)
		res := st.do(t, http.MethodPost, "/api/ion/runs", body, eng...)
		if res.Status != http.StatusCreated {
			t.Fatalf("create = %d %s", res.Status, res.Body)
		}
		ids = append(ids, res.JSON(t)["run_id"].(string))
	}
	for i := range 5 {
		create(i)
	}
	page := func(query string) runPage {
		t.Helper()
		res := st.do(t, http.MethodGet, "/api/runs?"+query, "", eng...)
		if res.Status != http.StatusOK || res.Header.Get(HeaderPosition) == "" {
			t.Fatalf("GET /api/runs?%s = %d %s", query, res.Status, res.Body)
		}
		var p runPage
		if err := json.Unmarshal(res.Body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	first := page("limit=2")
	if first.Total != 5 || len(first.Runs) != 2 || first.Runs[0].RunID != ids[4] || first.NextCursor == "" {
		t.Fatalf("first page = %+v, want runs 4 and 3 of 5 and a cursor", first)
	}
	if r := first.Runs[0]; r.ToolID != "IMP-0" || r.LotID != "LOT-1" || r.WaferID != "W04" || r.Kind != "ion" || r.UserID == "" {
		t.Errorf("row = %+v, want its tool, lot, wafer, kind and user", r)
	}
	create(5) // newer than every page being read
	var seen []string
	for _, r := range first.Runs {
		seen = append(seen, r.RunID)
	}
	for cur := first.NextCursor; cur != ""; {
		p := page("limit=2&cursor=" + cur)
		for _, r := range p.Runs {
			seen = append(seen, r.RunID)
		}
		cur = p.NextCursor
	}
	if fmt.Sprint(seen) != fmt.Sprint([]string{ids[4], ids[3], ids[2], ids[1], ids[0]}) {
		t.Errorf("paged = %v, want %v", seen, []string{ids[4], ids[3], ids[2], ids[1], ids[0]})
	}

	// Tool IMP-1 and lot LOT-1: run 1 only (run 4 is on IMP-0).
	if p := page("tool_id=IMP-1&lot_id=LOT-1&kind=ion"); p.Total != 1 || len(p.Runs) != 1 || p.Runs[0].RunID != ids[1] || p.NextCursor != "" {
		t.Errorf("tool IMP-1, lot LOT-1 = %+v, want run 1 alone", p)
	}
	if p := page("kind=rtp"); p.Total != 0 || len(p.Runs) != 0 {
		t.Errorf("kind=rtp = %+v, want none", p)
	}
	st.waitRun(t, "org-1", ids[5], projections.StatusCompleted)
	if p := page("status=completed&limit=100"); p.Total == 0 || p.Runs[0].Status != projections.StatusCompleted {
		t.Errorf("status=completed = %+v", p)
	}
	// Another organisation sees none of them.
	if res := st.do(t, http.MethodGet, "/api/runs", "", as(t, RoleEngineer, "org-2")...); res.Status != http.StatusOK || res.JSON(t)["total"] != 0.0 {
		t.Errorf("org-2 = %d %s, want an empty list", res.Status, res.Body)
	}
	for _, bad := range []string{"cursor=abc", "cursor=0", "limit=101", "kind=plasma", "status=done"} {
		if res := st.do(t, http.MethodGet, "/api/runs?"+bad, "", eng...); res.Status != http.StatusUnprocessableEntity {
			t.Errorf("GET /api/runs?%s = %d, want 422", bad, res.Status)
		}
	}
}
