package api

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/rtp"
)

// TuningRecorder records a controller tuning as an event, with who asked.
type TuningRecorder interface {
	// RecordTuning appends ControllerTuned to its own stream and returns
	// the tuning id and the event's global position.
	RecordTuning(ctx context.Context, t events.ControllerTuned, md events.Metadata) (id string, position uint64, err error)
}

// handleDoseProfile simulates an implant's 1-D depth profile and 2-D wafer
// dose map synchronously (seed 2.6): no job, no event.
func (s *Server) handleDoseProfile(c *fiber.Ctx) error {
	if _, err := jsonObject(c.Body()); err != nil {
		return err
	}
	req, err := ion.ParseProfileRequest(c.Body())
	if err != nil {
		return err
	}
	prof, err := ion.SimulateDoseProfile(req)
	if err != nil {
		return err
	}
	return c.JSON(prof)
}

// handleTune auto-tunes an RTP controller with a relay experiment on the
// simulator (seed 2.7) and records the tuning, with who asked, as a
// ControllerTuned event.
func (s *Server) handleTune(c *fiber.Ctx) error {
	if _, err := jsonObject(c.Body()); err != nil {
		return err
	}
	req, err := rtp.ParseTuneRequest(c.Body())
	if err != nil {
		return err
	}
	res, err := rtp.Tune(req)
	if err != nil {
		return err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode tuning: %w", err)
	}
	if s.tunings == nil {
		return c.Type("json").Send(out)
	}
	recipe, _ := json.Marshal(req.Recipe)
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.CommandTimeout)
	defer cancel()
	id, pos, err := s.tunings.RecordTuning(ctx, events.ControllerTuned{
		ControllerType: res.ControllerType, OptimizationTarget: req.OptimizationTarget,
		Recipe: recipe, Response: out,
	}, s.metadata(c))
	if err != nil {
		return err
	}
	var body map[string]any
	if err := json.Unmarshal(out, &body); err != nil {
		return err
	}
	body["tuning_id"] = id
	body["position"] = pos
	c.Set(HeaderPosition, fmt.Sprint(pos))
	return c.JSON(body)
}
