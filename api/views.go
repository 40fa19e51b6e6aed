package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// Views are the process-control read models the API serves besides runs
// and jobs.
type Views interface {
	// Charts returns the run-to-run SPC charts matching f (f.OrgID is the
	// caller's organisation), or projections.ErrNotFound when none does.
	Charts(ctx context.Context, f projections.ChartFilter) ([]projections.Chart, error)
	// Threads returns the R2R threads matching f.
	Threads(ctx context.Context, f projections.R2RFilter) []projections.R2RThread
}

// Limits of the view endpoints.
const (
	defaultChartPoints = 1000
	maxChartPoints     = 10000
	defaultEventsPage  = 100
	maxEventsPage      = 1000
)

var runKinds = []string{string(process.KindIon), string(process.KindRTP)}

// registerViewRoutes adds the SPC, R2R and raw-event endpoints.
//
// The run's raw events need job:view_logs: they are the job logs' source,
// unabridged (every payload and who caused it), so they go to the roles
// that read logs (engineer, admin), not to every role that may view a run.
func (s *Server) registerViewRoutes() {
	s.handle(fiber.MethodGet, "/api/spc/charts", PermSPCView,
		"Run-to-run SPC charts: points, centre line, control limits and the rule each violation broke", s.handleChartList)
	s.handle(fiber.MethodGet, "/api/r2r/threads", PermSPCView,
		"Run-to-run controller state per tool and recipe class", s.handleR2RThreads)
	s.handle(fiber.MethodGet, "/api/runs/:run_id/events", PermJobViewLogs,
		"A run's raw events, paged by revision", s.handleRunEvents)
}

// chartList answers GET /api/spc/charts.
type chartList struct {
	Charts []projections.Chart `json:"charts"`
	Count  int                 `json:"count"`
}

func (s *Server) handleChartList(c *fiber.Ctx) error {
	var ve process.ValidationError
	f := projections.ChartFilter{
		OrgID:     principal(c).OrgID,
		Kind:      queryEnum(c, &ve, "kind", runKinds),
		ToolID:    c.Query("tool_id"),
		Parameter: c.Query("parameter"),
		Points:    queryInt(c, &ve, "points", defaultChartPoints, 1, maxChartPoints),
	}
	if err := ve.Err(); err != nil {
		return err
	}
	var charts []projections.Chart
	if s.views != nil {
		var err error
		charts, err = s.views.Charts(c.UserContext(), f)
		if err != nil && !errors.Is(err, projections.ErrNotFound) {
			return err
		}
	}
	if charts == nil {
		charts = []projections.Chart{}
	}
	return c.JSON(chartList{Charts: charts, Count: len(charts)})
}

// threadList answers GET /api/r2r/threads.
type threadList struct {
	Threads []projections.R2RThread `json:"threads"`
	Count   int                     `json:"count"`
}

func (s *Server) handleR2RThreads(c *fiber.Ctx) error {
	var ve process.ValidationError
	f := projections.R2RFilter{OrgID: principal(c).OrgID, Kind: queryEnum(c, &ve, "kind", runKinds), ToolID: c.Query("tool_id")}
	if err := ve.Err(); err != nil {
		return err
	}
	ts := []projections.R2RThread{}
	if s.views != nil {
		ts = s.views.Threads(c.UserContext(), f)
	}
	return c.JSON(threadList{Threads: ts, Count: len(ts)})
}

// rawEvent is one stored event as GET /api/runs/{run_id}/events shows it.
type rawEvent struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"` // stored, with its version: "RunStarted.v1"
	Revision uint64          `json:"revision"`
	Position uint64          `json:"position"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
	Metadata events.Metadata `json:"metadata"`
}

// eventPage is a page of a run's events.
type eventPage struct {
	RunID    string     `json:"run_id"`
	Events   []rawEvent `json:"events"`
	From     uint64     `json:"from"`
	Limit    int        `json:"limit"`
	NextFrom uint64     `json:"next_from"` // the revision to ask for next
	HasMore  bool       `json:"has_more"`
}

// handleRunEvents pages through a run's stream by revision: ?from= is the
// first revision (0), ?limit= the page size (100, at most 1000). The run
// must be the caller's organisation's (404 otherwise, as if it did not
// exist).
func (s *Server) handleRunEvents(c *fiber.Ctx) error {
	var ve process.ValidationError
	from := queryInt(c, &ve, "from", 0, 0, math.MaxInt)
	limit := queryInt(c, &ve, "limit", defaultEventsPage, 1, maxEventsPage)
	if err := ve.Err(); err != nil {
		return err
	}
	p := principal(c)
	run, err := s.q.Run(c.UserContext(), p.OrgID, c.Params("run_id"))
	if err != nil {
		return err
	}
	if run.OrgID != p.OrgID {
		return projections.ErrNotFound
	}
	if s.store == nil {
		return &Error{Code: CodeUnavailable, Message: "events are not available on this node"}
	}
	stream := events.RunStream(run.RunID)
	recs, err := s.store.ReadStream(c.UserContext(), stream, events.Forwards, uint64(from), limit+1)
	if err != nil && !errors.Is(err, events.ErrNotFound) {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	out := eventPage{RunID: run.RunID, Events: []rawEvent{}, From: uint64(from), Limit: limit, NextFrom: uint64(from)}
	if len(recs) > limit {
		recs, out.HasMore = recs[:limit], true
	}
	for _, rec := range recs {
		out.NextFrom = rec.Revision + 1
		if rec.Metadata.OrgID != "" && rec.Metadata.OrgID != run.OrgID {
			continue
		}
		out.Events = append(out.Events, rawEvent{ID: rec.ID, Type: rec.Type, Revision: rec.Revision, Position: rec.Position,
			Time: rec.Time.UTC(), Data: rec.Data, Metadata: rec.Metadata})
	}
	return c.JSON(out)
}
