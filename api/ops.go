package api

import (
	"context"
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/projections"
)

// registerOpsRoutes adds the operational endpoints; they need no token.
func (s *Server) registerOpsRoutes() {
	s.handle(fiber.MethodGet, "/healthz", "", "Liveness: 200 while the process serves HTTP", s.handleHealthz)
	s.handle(fiber.MethodGet, "/readyz", "", "Readiness: 200 when the node can serve requests", s.handleReadyz)
	s.handle(fiber.MethodGet, "/metrics", "", "Prometheus metrics", s.metrics.handler())
	s.handle(fiber.MethodGet, "/openapi.json", "", "This API's OpenAPI 3.1 document, generated from the route table", s.handleOpenAPI)
	s.registerDashboardRoutes()
}

func (s *Server) handleHealthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) handleReadyz(c *fiber.Ctx) error {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.ReadyTimeout)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			return s.notReady(c, err)
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

// notReadyBody is /readyz's 503 body: the API's error shape, plus the
// projections stopped at an event they failed on.
type notReadyBody struct {
	Error   ErrorDetail           `json:"error"`
	Stopped []projections.Failure `json:"projections_stopped,omitempty"`
}

// notReady answers /readyz with 503 and why: an operator's probe, so the
// reason is shown (it names components, never request data).
func (s *Server) notReady(c *fiber.Ctx, err error) error {
	body := notReadyBody{Error: ErrorDetail{Code: CodeUnavailable, Message: "not ready: " + err.Error(),
		RequestID: requestID(c)}}
	var stopped *projections.StoppedError
	if errors.As(err, &stopped) {
		body.Stopped = stopped.Failures
	}
	c.Set(fiber.HeaderRetryAfter, "5")
	return c.Status(fiber.StatusServiceUnavailable).JSON(body)
}
