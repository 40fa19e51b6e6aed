package api

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"path"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/projections"
)

// The dashboard is a static page embedded in the binary. It holds no data:
// it asks for a token and then reads the API and its WebSocket streams like
// any other client. app.js and app.css are built from dashboard/src by
// `make dashboard` (esbuild) and committed, so a build needs no network;
// only the built files are embedded, never the sources or node_modules.
//
//go:embed dashboard/index.html dashboard/app.js dashboard/app.css
var dashboardFS embed.FS

// registerDashboardRoutes adds the page, its assets, and the two reads
// only the dashboard needs: who the caller is, and a run's depth profile.
func (s *Server) registerDashboardRoutes() {
	s.handle(fiber.MethodGet, "/", "", "The dashboard", s.handleDashboardFile("index.html"))
	s.handle(fiber.MethodGet, "/dashboard/:file", "", "Dashboard assets", func(c *fiber.Ctx) error {
		return s.handleDashboardFile(c.Params("file"))(c)
	})
	// Every role holds job:view_status: any signed-in caller may ask who it is.
	s.handle(fiber.MethodGet, "/api/auth/me", PermJobViewStatus,
		"The caller: user, organisation, role and the permissions the role holds", s.handleMe)
	s.handle(fiber.MethodGet, "/api/ion/runs/:run_id/profile", PermIonViewRun,
		"An ion run's as-implanted depth profile (profile_1d) from its recipe", s.handleRunProfile)
	// The basis is R2R controller state, as /api/r2r/threads is.
	s.handle(fiber.MethodGet, "/api/runs/:run_id/r2r", PermSPCView,
		"The R2R adjustments a run's latest attempt started with, and their basis", s.handleRunR2R)
	s.registerRunListRoutes()
	s.registerSessionCookieRoutes()
}

func (s *Server) handleDashboardFile(name string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		data, err := dashboardFS.ReadFile("dashboard/" + path.Base(name))
		if err != nil {
			return &Error{Code: CodeNotFound, Message: "not found"}
		}
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		c.Set(fiber.HeaderContentType, ct)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'")
		return c.Send(data)
	}
}

// me answers GET /api/auth/me.
type me struct {
	UserID      string       `json:"user_id"`
	Email       string       `json:"email,omitempty"`
	OrgID       string       `json:"org_id"`
	Role        Role         `json:"role"`
	Permissions []Permission `json:"permissions"`
}

// handleMe tells a client what its credential may do, so that the
// dashboard shows only the actions the caller's role holds. The server
// still checks every request: this is a courtesy, not the rule.
func (s *Server) handleMe(c *fiber.Ctx) error {
	p := principal(c)
	return c.JSON(me{UserID: p.UserID, Email: p.Email, OrgID: p.OrgID, Role: p.Role, Permissions: p.Role.Permissions()})
}

// runProfile answers GET /api/ion/runs/{run_id}/profile.
type runProfile struct {
	RunID     string         `json:"run_id"`
	Profile1D *ion.Profile1D `json:"profile_1d"` // null when the recipe gives none (metadata.reason)
	Metadata  map[string]any `json:"metadata"`
}

// handleRunProfile computes the depth profile of an ion run's recipe (the
// model POST /api/ion/simulate/dose_profile uses) at the dose the run
// delivered when it has completed, at the recipe's dose before that.
func (s *Server) handleRunProfile(c *fiber.Ctx) error {
	run, err := s.lookupRun(c, ionRuns)
	if err != nil {
		return err
	}
	var recipe map[string]any
	if err := json.Unmarshal(run.Recipe, &recipe); err != nil {
		return err
	}
	req := map[string]any{}
	for _, k := range []string{"species", "energy_kev", "dose_atoms_cm2", "tilt_deg", "twist_deg", "wafer_diameter_mm", "beam_current_ma", "scan_speed_mm_s"} {
		if v, ok := recipe[k]; ok {
			req[k] = v
		}
	}
	basis := "recipe dose"
	var result struct {
		FinalDose float64 `json:"final_dose_atoms_cm2"`
	}
	if len(run.Result) > 0 && json.Unmarshal(run.Result, &result) == nil && result.FinalDose > 0 {
		req["dose_atoms_cm2"], basis = result.FinalDose, "delivered dose (final_dose_atoms_cm2)"
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	// A stored recipe was validated when the run was created; one the model
	// still cannot take (a test engine's, an older schema's) has no
	// profile, which is not the caller's mistake: 200 with none and why.
	pr, err := ion.ParseProfileRequest(body)
	if err != nil {
		return c.JSON(runProfile{RunID: run.RunID, Metadata: map[string]any{"reason": err.Error()}})
	}
	prof, err := ion.SimulateDoseProfile(pr)
	if err != nil {
		return c.JSON(runProfile{RunID: run.RunID, Metadata: map[string]any{"reason": err.Error()}})
	}
	return c.JSON(runProfile{RunID: run.RunID, Profile1D: &prof.Profile1D, Metadata: map[string]any{
		"dose_basis": basis, "dose_atoms_cm2": req["dose_atoms_cm2"], "model": prof.Metadata.Model,
		"peak_concentration_cm3": prof.Metadata.PeakConcentrationCm3, "peak_depth_nm": prof.Metadata.PeakDepthNm,
		"units": map[string]string{"depth_nm": "nm", "concentration_cm3": "cm^-3"},
	}})
}

// runR2R answers GET /api/runs/{run_id}/r2r.
type runR2R struct {
	RunID   string             `json:"run_id"`
	JobID   string             `json:"job_id,omitempty"`
	Attempt int                `json:"attempt"`
	Applied map[string]float64 `json:"applied"`
	Basis   map[string]any     `json:"basis"`
	Started bool               `json:"started"` // false: no attempt has started yet
}

// handleRunR2R reads the run's stream backwards to its latest RunStarted:
// the adjustments that attempt was processed with and where they came from
// (tool, recipe class, the EWMA state read), as the run recorded them.
func (s *Server) handleRunR2R(c *fiber.Ctx) error {
	p := principal(c)
	run, err := s.q.Run(c.UserContext(), p.OrgID, c.Params("run_id"))
	if err != nil {
		return err
	}
	if run.OrgID != p.OrgID {
		return projections.ErrNotFound
	}
	out := runR2R{RunID: run.RunID, Applied: map[string]float64{}, Basis: map[string]any{}}
	if s.store == nil {
		return &Error{Code: CodeUnavailable, Message: "events are not available on this node"}
	}
	stream := events.RunStream(run.RunID)
	from := uint64(math.MaxUint64)
	for {
		recs, err := s.store.ReadStream(c.UserContext(), stream, events.Backwards, from, 200)
		if errors.Is(err, events.ErrNotFound) {
			return c.JSON(out)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		for _, rec := range recs {
			if events.BaseType(rec.Type) != events.TypeRunStarted {
				continue
			}
			var e events.RunStarted
			if err := json.Unmarshal(rec.Data, &e); err != nil {
				return fmt.Errorf("decode %s@%d: %w", stream, rec.Revision, err)
			}
			out.JobID, out.Attempt, out.Started = e.JobID, e.Attempt, true
			if e.R2R != nil {
				out.Applied = e.R2R
			}
			if e.R2RBasis != nil {
				out.Basis = e.R2RBasis
			}
			return c.JSON(out)
		}
		if len(recs) < 200 || recs[len(recs)-1].Revision == 0 {
			return c.JSON(out)
		}
		from = recs[len(recs)-1].Revision - 1
	}
}
