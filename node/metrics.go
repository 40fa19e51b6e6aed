package node

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

// timedStore times the appends that go through it: the run actors', the
// appends a run's pace depends on.
type timedStore struct {
	events.Store
	latency prometheus.Observer
}

func newTimedStore(s events.Store, reg prometheus.Registerer) timedStore {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "spectra_store_append_duration_seconds",
		Help:    "Latency of the run actors' appends to the event log, acknowledgement (and fsync) included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}})
	reg.MustRegister(h)
	return timedStore{Store: s, latency: h}
}

func (s timedStore) Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error) {
	start := time.Now()
	res, err := s.Store.Append(ctx, stream, expected, evs...)
	s.latency.Observe(time.Since(start).Seconds())
	return res, err
}

// runCollector exports the job-status read model's runs by status and
// the durations of the finished ones, computed when scraped.
type runCollector struct {
	jobs     *projections.JobStatus
	byStatus *prometheus.Desc
	duration *prometheus.Desc
}

// runDurationBuckets span a demo run at time scale 100 (a second) to a
// real-time RTP or implant run (minutes to hours).
var runDurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400}

func newRunCollector(jobs *projections.JobStatus) *runCollector {
	return &runCollector{jobs: jobs,
		byStatus: prometheus.NewDesc("spectra_runs", "Runs of every organisation by status (the job-status read model).", []string{"status"}, nil),
		duration: prometheus.NewDesc("spectra_run_duration_seconds", "Wall time from start to end of the finished runs.", nil, nil),
	}
}

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.byStatus
	ch <- c.duration
}

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	byStatus, durations := c.jobs.Stats()
	for _, s := range []string{projections.StatusQueued, projections.StatusRunning, projections.StatusPaused,
		projections.StatusRetrying, projections.StatusCompleted, projections.StatusFailed, projections.StatusCancelled} {
		ch <- prometheus.MustNewConstMetric(c.byStatus, prometheus.GaugeValue, float64(byStatus[s]), s)
	}
	buckets := make(map[float64]uint64, len(runDurationBuckets))
	var sum float64
	for _, d := range durations {
		sum += d
		for _, b := range runDurationBuckets {
			if d <= b {
				buckets[b]++
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.duration, uint64(len(durations)), sum, buckets)
}
