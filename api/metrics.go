package api

import (
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// httpMetrics are the HTTP server's Prometheus metrics. Labels are the
// route pattern, never the raw path, so their number stays bounded.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// sockets counts open WebSocket streams; closes counts their ends by
	// close code (4008: a slow consumer dropped; 0: the client went away).
	sockets  prometheus.Gauge
	closes   *prometheus.CounterVec
	gatherer prometheus.Gatherer
}

func newHTTPMetrics(reg prometheus.Registerer, g prometheus.Gatherer) *httpMetrics {
	if reg == nil && g == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, g = r, r
	}
	if reg == nil {
		reg = prometheus.NewRegistry() // metrics nobody gathers
	}
	if g == nil {
		if rg, ok := reg.(prometheus.Gatherer); ok {
			g = rg
		} else {
			g = prometheus.DefaultGatherer
		}
	}
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "spectra", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "spectra", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by method, route and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "status"}),
		sockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "spectra", Subsystem: "stream", Name: "sockets",
			Help: "Open WebSocket streams.",
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "spectra", Subsystem: "stream", Name: "closes_total",
			Help: "WebSocket streams ended, by close code (4008: slow consumer dropped; 0: the client went away).",
		}, []string{"code"}),
		gatherer: g,
	}
	m.requests = register(reg, m.requests)
	m.latency = register(reg, m.latency)
	m.sockets = register(reg, m.sockets)
	m.closes = register(reg, m.closes)
	return m
}

// register registers c, or returns the collector already registered under
// the same description (two servers sharing one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic("api: register metrics: " + err.Error())
	}
	return c
}

func (m *httpMetrics) observe(method, route string, status int, d time.Duration) {
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(method, route, code).Inc()
	m.latency.WithLabelValues(method, route, code).Observe(d.Seconds())
}

// handler serves the Prometheus text format.
func (m *httpMetrics) handler() fiber.Handler {
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx) error {
		h(c.Context())
		return nil
	}
}
