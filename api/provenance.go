package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
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
