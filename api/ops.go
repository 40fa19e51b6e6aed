package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
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
			return &Error{Code: CodeUnavailable, Message: "not ready", Err: err}
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}
