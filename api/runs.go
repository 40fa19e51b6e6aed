package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// runKind is what differs between the ion and RTP run endpoints.
type runKind struct {
	kind   process.Kind
	prefix string // "/api/ion"
	label  string // in messages: "Ion implantation run …"
	create Permission
	view   Permission
	cancel Permission
}

var (
	ionRuns = runKind{kind: process.KindIon, prefix: "/api/ion", label: "Ion implantation",
		create: PermIonCreateRun, view: PermIonViewRun, cancel: PermIonCancelRun}
	rtpRuns = runKind{kind: process.KindRTP, prefix: "/api/rtp", label: "RTP",
		create: PermRTPCreateRun, view: PermRTPViewRun, cancel: PermRTPCancelRun}
)

// Page sizes of lists.
const (
	defaultPageSize = 50
	maxPageSize     = 100
)

// registerIonRoutes adds the ion implantation endpoints.
//
// Extension point: POST /api/ion/simulate/dose_profile (ion:simulate) and
// WS /api/ion/stream/:run_id (ion:view_telemetry) belong here.
func (s *Server) registerIonRoutes() {
	s.registerRunRoutes(ionRuns)
	s.handle(fiber.MethodPost, "/api/ion/simulate/dose_profile", PermIonSimulate,
		"Simulate an implant's depth profile and wafer dose map (synchronous, no job)", s.handleDoseProfile)
}

// registerRTPRoutes adds the RTP endpoints.
//
// Extension point: WS /api/rtp/stream/:run_id (rtp:view_telemetry) belongs
// here.
func (s *Server) registerRTPRoutes() {
	s.registerRunRoutes(rtpRuns)
	s.handle(fiber.MethodPost, "/api/rtp/tune/controller", PermRTPTuneController,
		"Auto-tune an RTP controller by relay feedback (synchronous, recorded as an event)", s.handleTune)
}

func (s *Server) registerRunRoutes(k runKind) {
	s.handle(fiber.MethodPost, k.prefix+"/runs", k.create, "Create and queue a "+k.label+" run", s.handleRunCreate(k))
	s.handle(fiber.MethodGet, k.prefix+"/runs", k.view, "List "+k.label+" runs", s.handleRunList(k))
	s.handle(fiber.MethodGet, k.prefix+"/runs/:run_id", k.view, "Get a "+k.label+" run with its results", s.handleRunGet(k))
	s.handle(fiber.MethodDelete, k.prefix+"/runs/:run_id", k.cancel, "Cancel a "+k.label+" run", s.handleRunCancel(k))
}

// createResponse answers a created run (seed 2.6, plus position).
type createResponse struct {
	RunID     string    `json:"run_id"`
	JobID     string    `json:"job_id"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	Message   string    `json:"message"`
	Position  uint64    `json:"position"`
	Revision  uint64    `json:"revision"`
}

// handleRunCreate passes the body, as the recipe, to the actor layer, which
// validates it (process/ion.ParseRecipe, process/rtp.ParseRecipe); here we
// only check that it is a JSON object and read the run options in it.
func (s *Server) handleRunCreate(k runKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		body := bytes.Clone(c.Body())                       // Fiber reuses its buffer after the handler
		body, origin, err := s.fromLibrary(c, k.kind, body) // fab.go: {"recipe": {"name", "version"}, …}
		if err != nil {
			return err
		}
		fields, err := jsonObject(body)
		if err != nil {
			return err
		}
		opts, err := parseRunOptions(fields)
		if err != nil {
			return err
		}
		if !s.cfg.AllowFaultInjection {
			if opts.Fault != nil {
				return actors.ErrFaultInjectionDisabled
			}
			// A disturbance is hardware-in-the-loop injection too.
			if raw := fields["simulate_disturbance"]; !isNull(raw) {
				return invalid("simulate_disturbance", rawValue(raw), "absent (fault injection is disabled)",
					"fault injection is disabled on this server")
			}
		}
		key := c.Get(HeaderIdempotency)
		if len(key) > maxIdempotencyKeyLen {
			return invalid(HeaderIdempotency, nil, "at most 200 characters", "the idempotency key is too long")
		}
		acc, err := s.cmd.CreateRun(c.UserContext(), actors.CreateRun{
			Kind:           k.kind,
			Recipe:         json.RawMessage(bytes.TrimSpace(body)),
			ToolID:         opts.ToolID,
			Priority:       opts.Priority,
			IdempotencyKey: key,
			Fault:          opts.Fault,
			Disturbance:    opts.Disturbance,
			Origin:         origin,
			Meta:           s.metadata(c),
		})
		if err != nil {
			return err
		}
		s.accepted(c, acc.Position)
		status, msg := acc.Status, fmt.Sprintf("%s run %s created and queued", k.label, acc.RunID)
		switch status {
		case "", projections.StatusQueued:
			status = projections.StatusQueued
		default: // a repeated request with the same Idempotency-Key
			msg = fmt.Sprintf("%s run %s already exists (status %s)", k.label, acc.RunID, status)
		}
		c.Location(k.prefix + "/runs/" + acc.RunID)
		return c.Status(fiber.StatusCreated).JSON(createResponse{
			RunID:     acc.RunID,
			JobID:     acc.JobID,
			Status:    status,
			CreatedAt: acc.CreatedAt.UTC(),
			Message:   msg,
			Position:  acc.Position,
			Revision:  acc.Revision,
		})
	}
}

// runView is a run as the API shows it: the read model's fields with its
// results (final_dose_atoms_cm2, vm_prediction, …) at the top level, as the
// seed's responses have them. A result never hides a field of the run.
type runView projections.Run

// MarshalJSON flattens Result into the run's object.
func (v runView) MarshalJSON() ([]byte, error) {
	r := projections.Run(v)
	if r.Artifacts == nil {
		r.Artifacts = []projections.Artifact{}
	}
	if r.Recipe == nil {
		r.Recipe = json.RawMessage("null")
	}
	base, err := json.Marshal(r)
	if err != nil || len(r.Result) == 0 {
		return base, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(base, &obj); err != nil {
		return nil, err
	}
	var result map[string]json.RawMessage
	if err := json.Unmarshal(r.Result, &result); err != nil {
		return nil, fmt.Errorf("result of %s: %w", r.RunID, err)
	}
	for name, raw := range result {
		if _, taken := obj[name]; !taken {
			obj[name] = raw
		}
	}
	return json.Marshal(obj)
}

// lookupRun reads a run of the caller's organisation and of kind k; a run
// of the other kind is not found either.
func (s *Server) lookupRun(c *fiber.Ctx, k runKind) (projections.Run, error) {
	p := principal(c)
	run, err := s.q.Run(c.UserContext(), p.OrgID, c.Params("run_id"))
	if err != nil {
		return projections.Run{}, err
	}
	if run.OrgID != p.OrgID || run.Kind != string(k.kind) {
		return projections.Run{}, projections.ErrNotFound
	}
	return run, nil
}

func (s *Server) handleRunGet(k runKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		run, err := s.lookupRun(c, k)
		if err != nil {
			return err
		}
		return c.JSON(runView(run))
	}
}

// runList is a page of runs.
type runList struct {
	Runs   []runView `json:"runs"`
	Total  int       `json:"total"`
	Limit  int       `json:"limit"`
	Offset int       `json:"offset"`
}

func (s *Server) handleRunList(k runKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var ve process.ValidationError
		f := projections.RunFilter{
			OrgID:  principal(c).OrgID,
			Kind:   string(k.kind),
			Status: queryEnum(c, &ve, "status", jobStatuses),
			Limit:  queryInt(c, &ve, "limit", defaultPageSize, 1, maxPageSize),
			Offset: queryInt(c, &ve, "offset", 0, 0, math.MaxInt32),
		}
		if err := ve.Err(); err != nil {
			return err
		}
		runs, total, err := s.q.Runs(c.UserContext(), f)
		if err != nil {
			return err
		}
		out := runList{Runs: make([]runView, 0, len(runs)), Total: total, Limit: f.Limit, Offset: f.Offset}
		for _, r := range runs {
			if r.OrgID != f.OrgID {
				continue // never show another organisation's run, whatever the read model says
			}
			out.Runs = append(out.Runs, runView(r))
		}
		return c.JSON(out)
	}
}

// commandResponse answers an accepted command on a run.
type commandResponse struct {
	RunID    string `json:"run_id"`
	JobID    string `json:"job_id"`
	Status   string `json:"status"`
	Message  string `json:"message"`
	Position uint64 `json:"position"`
	Revision uint64 `json:"revision"`
}

func (s *Server) handleRunCancel(k runKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		run, err := s.lookupRun(c, k)
		if err != nil {
			return err
		}
		reason, err := optionalReason(c)
		if err != nil {
			return err
		}
		acc, err := s.cmd.CancelRun(c.UserContext(), actors.RunCommand{RunID: run.RunID, Reason: reason, Meta: s.metadata(c)})
		if err != nil {
			return err
		}
		return s.commandAccepted(c, acc, "cancellation of run "+acc.RunID+" requested")
	}
}

// commandAccepted answers 202 to a command the actor layer accepted.
func (s *Server) commandAccepted(c *fiber.Ctx, acc actors.Accepted, msg string) error {
	s.accepted(c, acc.Position)
	return c.Status(fiber.StatusAccepted).JSON(commandResponse{
		RunID: acc.RunID, JobID: acc.JobID, Status: acc.Status, Message: msg,
		Position: acc.Position, Revision: acc.Revision,
	})
}
