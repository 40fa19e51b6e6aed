package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/spectra-fab/spectra/projections"
)

// BenchmarkGetJob serves GET /api/jobs/{id} over loopback to 32
// concurrent keep-alive clients: Spectra's full stack (JWT verification,
// RBAC, rate limiter, logging, metrics, the job read model behind the
// Queries port) beside a bare Fiber handler answering the same JSON.
//
//	go test -run '^$' -bench GetJob -benchtime 20000x ./api/
func BenchmarkGetJob(b *testing.B) {
	const clients = 32
	job := projections.Job{ID: "job-000000000001", RunID: "ION-20260101-00000001", OrgID: "org-1",
		JobType: projections.JobTypeIon, UserID: "u-1", Status: "running", CreatedAt: time.Now().UTC()}
	load := func(b *testing.B, app *fiber.App, auth string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = app.Listener(ln) }()
		b.Cleanup(func() { _ = app.Shutdown() })
		c := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: clients}
		url := "http://" + ln.Addr().String() + "/api/jobs/" + job.ID
		var left atomic.Int64
		left.Store(int64(b.N))
		var failed atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(res)
				req.SetRequestURI(url)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				for left.Add(-1) >= 0 {
					if err := c.Do(req, res); err != nil || res.StatusCode() != 200 {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d of %d requests failed", n, b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}

	b.Run("spectra_jwt", func(b *testing.B) {
		be := newBackend()
		be.addRun(projections.Run{RunID: job.RunID, JobID: job.ID, OrgID: "org-1", Kind: "ion", Status: "running"})
		srv := New(Config{JWTSecret: testSecret, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Node: "bench",
			RateLimits: RateLimits{Reads: 1 << 30}}, Deps{Commands: be, Queries: be})
		tok, err := IssueToken(testSecret, "u-viewer", "viewer@example.com", "org-1", string(RoleViewer), time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		load(b, srv.App(), "Bearer "+tok)
	})
	b.Run("bare_fiber", func(b *testing.B) {
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		app.Get("/api/jobs/:id", func(c *fiber.Ctx) error {
			if c.Params("id") != job.ID {
				return fiber.ErrNotFound
			}
			data, err := json.Marshal(job)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(data)
		})
		load(b, app, "")
	})
}
