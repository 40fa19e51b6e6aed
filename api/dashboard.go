package api

import (
	"embed"
	"mime"
	"path"

	"github.com/gofiber/fiber/v2"
)

// The dashboard is a static page embedded in the binary. It holds no data:
// it asks for a token and then reads the API and its WebSocket streams like
// any other client.
//
//go:embed dashboard
var dashboardFS embed.FS

func (s *Server) registerDashboardRoutes() {
	s.handle(fiber.MethodGet, "/", "", "The dashboard", s.handleDashboardFile("index.html"))
	s.handle(fiber.MethodGet, "/dashboard/:file", "", "Dashboard assets", func(c *fiber.Ctx) error {
		return s.handleDashboardFile(c.Params("file"))(c)
	})
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
		c.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:")
		return c.Send(data)
	}
}
