package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
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
		if err := checkIdempotencyKey(key); err != nil {
			return err
		}
		// Every create is idempotent: without a key of the client's, by one
		// the server chooses and names if the create fails or times out,
		// so that a retry with it finds the run instead of making another.
		chosen := key == ""
		if chosen {
			key = serverKey(time.Now())
		}
		recipe := json.RawMessage(bytes.TrimSpace(body))
		p := principal(c)
		scoped := scopedKey(p, key)
		// A key of the server's form names its run (actors.KeyRunID):
		// recording the run claims it, and the answer says whether the run
		// was there before. Another key is claimed in its own stream; the
		// read tells a repetition.
		runID := ""
		replay := false
		if day, ok := serverKeyDay(key); ok {
			runID = actors.KeyRunID(k.kind, day, p.OrgID, scoped)
		} else {
			if replay, err = s.claimedBefore(c.UserContext(), p.OrgID, scoped, events.RequestFingerprint(string(k.kind), recipe)); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.CommandTimeout)
		defer cancel()
		acc, err := s.cmd.CreateRun(ctx, actors.CreateRun{
			Kind:           k.kind,
			Recipe:         recipe,
			ToolID:         opts.ToolID,
			Priority:       opts.Priority,
			IdempotencyKey: scoped,
			RunID:          runID,
			KeyRepeated:    runID != "" && !chosen,
			Fault:          opts.Fault,
			Disturbance:    opts.Disturbance,
			Origin:         origin,
			Meta:           s.metadata(c),
		})
		if err != nil {
			return &createError{key: key, chosen: chosen, err: err}
		}
		replay = replay || acc.Existing
		s.accepted(c, acc.Position)
		status, jobID := acc.Status, acc.JobID
		if status == "" {
			status = projections.StatusQueued
		}
		code, msg := fiber.StatusCreated, fmt.Sprintf("%s run %s created and queued", k.label, acc.RunID)
		if replay {
			// A repeated request answers the run as it is now.
			if run, err := s.q.Run(c.UserContext(), p.OrgID, acc.RunID); err == nil {
				status, jobID = run.Status, run.JobID
			}
			code, msg = fiber.StatusOK, fmt.Sprintf("%s run %s already exists (status %s)", k.label, acc.RunID, status)
		}
		c.Location(k.prefix + "/runs/" + acc.RunID)
		return c.Status(code).JSON(createResponse{
			RunID:     acc.RunID,
			JobID:     jobID,
			Status:    status,
			CreatedAt: acc.CreatedAt.UTC(),
			Message:   msg,
			Position:  acc.Position,
			Revision:  acc.Revision,
		})
	}
}

// serverKey is an idempotency key the server chooses for a create sent
// without one: srv-<day>-<uuid>. The day lets the key name its run
// (actors.KeyRunID) whenever it is repeated.
func serverKey(now time.Time) string {
	return "srv-" + now.UTC().Format("20060102") + "-" + uuid.NewString()
}

// serverKeyDay reads the day of a key of the server's form.
func serverKeyDay(key string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(key, "srv-")
	if !ok || len(rest) < len("20060102-") || rest[len("20060102")] != '-' {
		return time.Time{}, false
	}
	day, err := time.Parse("20060102", rest[:len("20060102")])
	return day, err == nil
}

// checkIdempotencyKey accepts keys of up to 200 printable ASCII characters
// (the IETF draft's keys are strings; ours go into events and logs).
func checkIdempotencyKey(key string) error {
	if len(key) > maxIdempotencyKeyLen {
		return invalid(HeaderIdempotency, nil, "at most 200 characters", "the idempotency key is too long")
	}
	for _, r := range key {
		if r < 0x21 || r > 0x7e {
			return invalid(HeaderIdempotency, nil, "printable ASCII characters without spaces",
				"the idempotency key has characters outside printable ASCII")
		}
	}
	return nil
}

// scopedKey scopes an idempotency key to its principal: two users (or API
// keys) of one organisation may pick the same key without meeting.
func scopedKey(p Principal, key string) string {
	return fmt.Sprintf("%d:%s:%s", len(p.UserID), p.UserID, key)
}

// claimedBefore reports whether the principal's key already names a run:
// the request is then a repetition. A key claimed by a request with
// another fingerprint (another kind or body) is a 422.
func (s *Server) claimedBefore(ctx context.Context, org, key, fingerprint string) (bool, error) {
	if s.store == nil {
		return false, nil
	}
	recs, err := s.store.ReadStream(ctx, events.IdempotencyStream(org, key), events.Forwards, 0, 1)
	if errors.Is(err, events.ErrNotFound) || (err == nil && len(recs) == 0) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read idempotency claim: %w", err)
	}
	p, err := events.Decode(recs[0])
	if err != nil {
		return false, err
	}
	if cl, ok := p.(*events.IdempotencyKeyClaimed); ok && cl.Fingerprint != "" && cl.Fingerprint != fingerprint {
		return false, invalid(HeaderIdempotency, nil, "a new key for a different request",
			"the key was used for a different request (another kind or body)")
	}
	return true, nil
}

// createError is a create that failed after it may have recorded the run:
// the answer names the idempotency key a retry finds the run by.
type createError struct {
	key    string
	chosen bool // by the server: the client sent none
	err    error
}

func (e *createError) Error() string {
	return "create run (idempotency key " + e.key + "): " + e.err.Error()
}
func (e *createError) Unwrap() error { return e.err }

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
		var acc actors.Accepted
		err = s.command(c, k.prefix+"/runs/"+run.RunID, func(ctx context.Context) (err error) {
			acc, err = s.cmd.CancelRun(ctx, actors.RunCommand{RunID: run.RunID, Reason: reason, Meta: s.metadata(c)})
			return err
		})
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
