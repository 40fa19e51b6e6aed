package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
	"github.com/spectra-fab/spectra/run"
)

// RunVerifier re-simulates a recorded run and checks its hash chain
// (projections.Verifier is one).
type RunVerifier interface {
	// Verify returns the run's verification report, or events.ErrNotFound
	// for a run that does not exist or belongs to another organisation.
	Verify(ctx context.Context, orgID, runID string) (run.Report, error)
}

func init() {
	successes["GET /api/runs/:run_id/verify"] = success{status: 200, body: run.Report{}, name: "VerifyReport"}
	successes["GET /api/runs/:run_id/records"] = success{status: 200, body: []events.Record{}, name: "RecordList"}
	successes["GET /api/tools/:tool_id/timeline"] = success{status: 200, body: projections.E10Timeline{}, name: "ToolTimeline"}
	successes["POST /api/r2r/what-if"] = success{status: 200, body: run.WhatIfReport{}, name: "WhatIfReport"}
	successes["POST /api/tools/:tool_id/maintenance"] = success{status: 201, body: maintenanceView{}, name: "ToolMaintenance"}
	requestBodies["POST /api/r2r/what-if"] = map[string]any{"type": "object", "properties": map[string]any{
		"setting": map[string]any{"type": "object", "properties": map[string]any{
			"off":     map[string]any{"type": "boolean"},
			"lambda":  map[string]any{"type": "number", "minimum": 0, "maximum": 1},
			"targets": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "number"}}}},
		"run_ids":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"tool_id":  map[string]any{"type": "string"},
		"baseline": map[string]any{"type": "integer", "minimum": 0}}}
	requestBodies["POST /api/tools/:tool_id/maintenance"] = map[string]any{"type": "object", "required": []string{"from", "until", "reason"},
		"properties": map[string]any{
			"from":   map[string]any{"type": "string", "format": "date-time"},
			"until":  map[string]any{"type": "string", "format": "date-time", "description": "after from, at most 366 days later"},
			"reason": map[string]any{"type": "string", "maxLength": maxMaintenanceReason}}}
}

// registerProvenanceRoutes adds golden-run verification and the export of
// a run's stored records for offline verification (docs/provenance.md).
func (s *Server) registerProvenanceRoutes() {
	s.handle(fiber.MethodGet, "/api/runs/:run_id/verify", PermAuditView,
		"Re-simulate a run from its recorded inputs and compare it with its log event by event; check its hash chain",
		s.handleRunVerify)
	s.handle(fiber.MethodGet, "/api/runs/:run_id/records", PermAuditView,
		"Export a run's stored events with their metadata (hash links, seals), for offline verification",
		s.handleRunRecords)
}

func (s *Server) handleRunVerify(c *fiber.Ctx) error {
	// Another organisation's run is not found before any work is done.
	if _, err := s.q.Run(c.UserContext(), principal(c).OrgID, c.Params("run_id")); err != nil {
		return err
	}
	if s.runVerifier == nil {
		return &Error{Code: CodeUnavailable, Message: "verification is not available on this node"}
	}
	rep, err := s.runVerifier.Verify(c.UserContext(), principal(c).OrgID, c.Params("run_id"))
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

// handleRunRecords answers the run's stream as stored: a JSON array of
// records (id, stream, revision, position, type, time, data, metadata).
func (s *Server) handleRunRecords(c *fiber.Ctx) error {
	if s.store == nil {
		return &Error{Code: CodeUnavailable, Message: "the event log is not available on this node"}
	}
	runID := c.Params("run_id")
	recs, err := s.store.ReadStream(c.UserContext(), events.RunStream(runID), events.Forwards, 0, 0)
	if err != nil {
		if errors.Is(err, events.ErrNotFound) {
			return err
		}
		return fmt.Errorf("read %s: %w", events.RunStream(runID), err)
	}
	if len(recs) == 0 || recs[0].Metadata.OrgID != principal(c).OrgID {
		return fmt.Errorf("run %s: %w", runID, events.ErrNotFound)
	}
	return c.JSON(recs)
}

// WhatIfReplayer answers counterfactual R2R replays (projections.WhatIfs
// is one).
type WhatIfReplayer interface {
	WhatIf(ctx context.Context, orgID string, q projections.WhatIfRequest) (run.WhatIfReport, error)
}

// registerWhatIfRoutes adds the counterfactual replay of the R2R law.
func (s *Server) registerWhatIfRoutes() {
	s.handle(fiber.MethodPost, "/api/r2r/what-if", PermSPCManage,
		"Replay recorded runs through the R2R law and SPC under another setting (λ, targets or off); writes nothing",
		s.handleWhatIf)
}

func (s *Server) handleWhatIf(c *fiber.Ctx) error {
	if s.whatIf == nil {
		return &Error{Code: CodeUnavailable, Message: "what-if is not available on this node"}
	}
	var q projections.WhatIfRequest // an empty body: the recorded setting, every run
	if body := c.Body(); len(body) > 0 {
		if err := json.Unmarshal(body, &q); err != nil {
			return invalid("body", nil, "a JSON object: setting {off, lambda, targets}, run_ids, tool_id, baseline", err.Error())
		}
	}
	if l := q.Setting.Lambda; l < 0 || l > 1 {
		return invalid("setting.lambda", l, "0 < λ ≤ 1 (0: the default)", "out of range")
	}
	if s.events == nil {
		// Every what-if is audited; a node that cannot record it answers none.
		return &Error{Code: CodeUnavailable, Message: "what-if is not available on this node: its audit cannot be recorded"}
	}
	rep, err := s.whatIf.WhatIf(c.UserContext(), principal(c).OrgID, q)
	if err != nil {
		return err
	}
	// Who asked which setting over which runs: in the organisation's audit
	// stream, never in a run's log.
	res, err := s.appendEvent(c, events.AuditStream(principal(c).OrgID), events.ExpectAny, &events.WhatIfRequested{
		Off: q.Setting.Off, Lambda: q.Setting.Lambda, Targets: q.Setting.Targets,
		RunIDs: q.RunIDs, ToolID: q.ToolID, Baseline: q.Baseline, Runs: len(rep.Runs), Changed: rep.Changed})
	if err != nil {
		return err
	}
	s.accepted(c, res.Position)
	return c.JSON(rep)
}

// ToolTimelines answers SEMI E10 timelines (projections.Tools is one).
type ToolTimelines interface {
	Timeline(ctx context.Context, orgID, toolID string, since, until time.Time) (projections.E10Timeline, error)
}

// maxTimelinePeriod bounds one timeline request.
const maxTimelinePeriod = 366 * 24 * time.Hour

// registerToolRoutes adds the E10 equipment-state timeline.
func (s *Server) registerToolRoutes() {
	s.handle(fiber.MethodGet, "/api/tools/:tool_id/timeline", PermSPCView,
		"A tool's SEMI E10 states over a period (since, until: RFC 3339; default the last 24 h), with availability, uptime and utilisation",
		s.handleToolTimeline)
	s.handle(fiber.MethodPost, "/api/tools/:tool_id/maintenance", PermToolMaintain,
		"Schedule maintenance of a tool over [from, until): E10 scheduled downtime in its timeline; audited",
		s.handleToolMaintenance)
}

// maxMaintenanceReason bounds a maintenance window's reason.
const maxMaintenanceReason = 1000

// maintenanceView is a scheduled maintenance window as the API answers it.
type maintenanceView struct {
	MaintenanceID string    `json:"maintenance_id"`
	ToolID        string    `json:"tool_id"`
	From          time.Time `json:"from"`
	Until         time.Time `json:"until"`
	Reason        string    `json:"reason"`
	ScheduledBy   string    `json:"scheduled_by"`
	Position      uint64    `json:"position"`
}

// handleToolMaintenance records a maintenance window as a
// ToolMaintenanceScheduled on the tool's stream (tool-<org>-<tool>), with
// who asked in its metadata: the audit trail shows it.
func (s *Server) handleToolMaintenance(c *fiber.Ctx) error {
	if s.events == nil {
		return &Error{Code: CodeUnavailable, Message: "maintenance cannot be recorded on this node"}
	}
	toolID := c.Params("tool_id")
	if strings.TrimSpace(toolID) == "" || len(toolID) > maxToolIDLen {
		return invalid("tool_id", toolID, "a tool id of at most 128 characters", "bad tool id")
	}
	fields, err := strictObject(c.Body(), false, "from", "until", "reason")
	if err != nil {
		return err
	}
	var ve process.ValidationError
	at := func(name string) time.Time {
		v := stringField(fields, &ve, name, 64, true)
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			ve.Add(name, v, "an RFC 3339 time", name+" is not a time")
		}
		return t.UTC()
	}
	from, until := at("from"), at("until")
	reason := stringField(fields, &ve, "reason", maxMaintenanceReason, true)
	if err := ve.Err(); err != nil {
		return err
	}
	if !until.After(from) || until.Sub(from) > maxTimelinePeriod {
		return invalid("until", until, "after from, at most 366 days later", "bad maintenance window")
	}
	e := &events.ToolMaintenanceScheduled{MaintenanceID: events.NewID(), OrgID: principal(c).OrgID, ToolID: toolID,
		From: from, Until: until, Reason: reason}
	res, err := s.appendEvent(c, events.ToolStream(e.OrgID, toolID), events.ExpectAny, e)
	if err != nil {
		return err
	}
	s.accepted(c, res.Position)
	return c.Status(fiber.StatusCreated).JSON(maintenanceView{MaintenanceID: e.MaintenanceID, ToolID: toolID, From: from,
		Until: until, Reason: reason, ScheduledBy: principal(c).UserID, Position: res.Position})
}

func (s *Server) handleToolTimeline(c *fiber.Ctx) error {
	if s.tools == nil {
		return &Error{Code: CodeUnavailable, Message: "tool timelines are not available on this node"}
	}
	until, since := time.Now().UTC(), time.Time{}
	for _, q := range []struct {
		name string
		dst  *time.Time
	}{{"until", &until}, {"since", &since}} {
		if v := c.Query(q.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return invalid(q.name, v, "an RFC 3339 time", "not a time")
			}
			*q.dst = t.UTC()
		}
	}
	if since.IsZero() {
		since = until.Add(-24 * time.Hour)
	}
	if !until.After(since) || until.Sub(since) > maxTimelinePeriod {
		return invalid("since", since, "before until, at most 366 days before it", "bad period")
	}
	tl, err := s.tools.Timeline(c.UserContext(), principal(c).OrgID, c.Params("tool_id"), since, until)
	if err != nil {
		return err
	}
	return c.JSON(tl)
}
