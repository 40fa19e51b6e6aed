package api

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

func init() {
	successes["GET /api/runs"] = success{status: 200, body: runPage{}, name: "RunPage"}
}

// registerRunListRoutes adds the organisation's run list, paged by cursor:
// what the dashboard's runs list reads one page at a time.
func (s *Server) registerRunListRoutes() {
	s.handle(fiber.MethodGet, "/api/runs", PermJobViewStatus,
		"List the organisation's runs of both kinds, newest first, filtered by status, kind, tool and lot, paged by cursor",
		s.handleRunPage)
}

// runRow is one run of a list: what a table row shows, without its recipe
// or results.
type runRow struct {
	RunID          string    `json:"run_id"`
	JobID          string    `json:"job_id"`
	Kind           string    `json:"kind"`
	UserID         string    `json:"user_id"`
	Status         string    `json:"status"`
	E40State       string    `json:"e40_state"`
	Progress       float64   `json:"progress"`
	CurrentStep    string    `json:"current_step"`
	ToolID         string    `json:"tool_id"`
	LotID          string    `json:"lot_id"`
	WaferID        string    `json:"wafer_id"`
	SPCAlertsCount int       `json:"spc_alerts_count"`
	FDCAlarmsCount int       `json:"fdc_alarms_count"`
	CreatedAt      time.Time `json:"created_at"`
	Revision       uint64    `json:"revision"`
}

// runPage answers GET /api/runs: a page of runs, how many match the
// filters in all, and the cursor of the next (older) page, "" after the
// last. Runs created meanwhile never shift a cursor's page.
type runPage struct {
	Runs       []runRow `json:"runs"`
	Total      int      `json:"total"`
	Limit      int      `json:"limit"`
	NextCursor string   `json:"next_cursor"`
}

func (s *Server) handleRunPage(c *fiber.Ctx) error {
	var ve process.ValidationError
	f := projections.RunFilter{
		OrgID:  principal(c).OrgID,
		Kind:   queryEnum(c, &ve, "kind", runKinds),
		Status: queryEnum(c, &ve, "status", jobStatuses),
		ToolID: c.Query("tool_id"),
		LotID:  c.Query("lot_id"),
		Limit:  queryInt(c, &ve, "limit", defaultPageSize, 1, maxPageSize),
	}
	for _, q := range []string{"tool_id", "lot_id"} {
		if v := c.Query(q); len(v) > 64 {
			ve.Add(q, v, "at most 64 characters", q+" is too long")
		}
	}
	if cur := c.Query("cursor"); cur != "" {
		n, err := strconv.Atoi(cur)
		if err != nil || n < 1 || n > math.MaxInt32 {
			ve.Add("cursor", cur, "a next_cursor this endpoint returned", "invalid cursor")
		}
		f.Before = n
	}
	if err := ve.Err(); err != nil {
		return err
	}
	runs, total, err := s.q.Runs(c.UserContext(), f)
	if err != nil {
		return err
	}
	out := runPage{Runs: make([]runRow, 0, len(runs)), Total: total, Limit: f.Limit}
	for _, r := range runs {
		if r.OrgID != f.OrgID {
			continue // never show another organisation's run, whatever the read model says
		}
		out.Runs = append(out.Runs, rowOf(r))
	}
	if len(runs) == f.Limit && runs[len(runs)-1].Seq > 1 {
		out.NextCursor = strconv.Itoa(runs[len(runs)-1].Seq)
	}
	return c.JSON(out)
}

func rowOf(r projections.Run) runRow {
	var recipe struct {
		LotID   string `json:"lot_id"`
		WaferID string `json:"wafer_id"`
	}
	_ = json.Unmarshal(r.Recipe, &recipe) // a recipe without them lists blank
	return runRow{RunID: r.RunID, JobID: r.JobID, Kind: r.Kind, UserID: r.UserID, Status: r.Status, E40State: r.E40State,
		Progress: r.Progress, CurrentStep: r.CurrentStep, ToolID: r.ToolID, LotID: recipe.LotID, WaferID: recipe.WaferID,
		SPCAlertsCount: r.SPCAlertsCount, FDCAlarmsCount: r.FDCAlarmsCount, CreatedAt: r.CreatedAt, Revision: r.Revision}
}
