package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
)

// Appender is what the SPC monitor needs of the event store.
type Appender interface {
	Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error)
}

// SPCMonitor records the chart-level SPC facts: the limits a chart's
// baseline fixes and the rules its later points break. It is a process
// manager: it reads what is due from the SPCCharts read model (Pending)
// and appends it to the tool's SPC stream, spc-<org>-<kind>-<tool>-<hash>,
// with the stream's expected revision. A run's own stream is not the place:
// its one writer is the run actor, and a chart is about many runs.
//
// The facts it appends come back through the log into SPCCharts, which is
// what the chart shows; so a chart is a pure function of the log, and a
// rebuild draws it identically. Event ids are derived from the fact
// (stream, parameter, job, rule, point), so a monitor restarted, or a
// second node's monitor, appends nothing twice: a retried append is a
// no-op and a racing one fails on the expected revision and is re-judged
// against what the other wrote.
type SPCMonitor struct {
	charts *SPCCharts
	store  Appender
	log    *slog.Logger
	// Node names this node in the metadata of what it appends.
	Node string
	// Timeout bounds each append (5 s).
	Timeout time.Duration

	mu   sync.Mutex
	sent map[string]uint64          // stream → revision of our last append not yet seen in the model
	ids  map[string]map[string]bool // stream → ids appended and not yet seen
}

// NewSPCMonitor returns a monitor of charts appending to store.
func NewSPCMonitor(charts *SPCCharts, store Appender, log *slog.Logger) *SPCMonitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SPCMonitor{charts: charts, store: store, log: log, Timeout: 5 * time.Second,
		sent: map[string]uint64{}, ids: map[string]map[string]bool{}}
}

// Run records what is due whenever the charts change, until ctx ends.
// Start it once the runner feeding the charts has caught up (caughtUp is
// closed), so it judges the whole log rather than a prefix of it.
func (m *SPCMonitor) Run(ctx context.Context, caughtUp <-chan struct{}) error {
	select {
	case <-caughtUp:
	case <-ctx.Done():
		return nil
	}
	for {
		changed := m.charts.Changed()
		m.Record(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// Record appends what is due now, stream by stream, and returns how many
// events it appended.
func (m *SPCMonitor) Record(ctx context.Context) int {
	facts, revs := m.charts.Pending()
	streams := make([]string, 0, len(facts))
	for s := range facts {
		streams = append(streams, s)
	}
	slices.Sort(streams)
	n := 0
	for _, stream := range streams {
		k, err := m.record(ctx, stream, facts[stream], revs[stream])
		n += k
		switch {
		case err == nil:
		case errors.Is(err, events.ErrConflict):
			// Another writer got there first; what it wrote comes back
			// through the model, and what is still due is judged again.
			m.log.Debug("spc facts not recorded: stream moved", "stream", stream, "err", err)
		case ctx.Err() != nil:
			return n
		default:
			m.log.Warn("spc facts not recorded", "stream", stream, "err", err)
		}
	}
	return n
}

func (m *SPCMonitor) record(ctx context.Context, stream string, facts []SPCFact, seen int64) (int, error) {
	m.mu.Lock()
	if rev, ok := m.sent[stream]; ok {
		if seen >= int64(rev) {
			delete(m.sent, stream) // the model has caught up with our appends
			delete(m.ids, stream)
		} else {
			seen = int64(rev)
		}
	}
	var evs []events.Event
	for _, f := range facts {
		if m.ids[stream][f.ID] {
			continue
		}
		ref := chartOf(f.Payload)
		ev, err := events.NewWithID(f.ID, f.Payload, events.Metadata{OrgID: ref.OrgID, UserID: "spc-monitor",
			CorrelationID: f.Run, CausationID: f.Cause, Node: m.Node})
		if err != nil {
			m.mu.Unlock()
			return 0, err
		}
		evs = append(evs, ev)
	}
	m.mu.Unlock()
	if len(evs) == 0 {
		return 0, nil
	}
	expected := events.ExpectNoStream
	if seen >= 0 {
		expected = events.ExpectRevision(uint64(seen))
	}
	actx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	res, err := m.store.Append(actx, stream, expected, evs...)
	if err != nil {
		return 0, fmt.Errorf("record spc facts: %w", err)
	}
	m.mu.Lock()
	m.sent[stream] = res.Revision
	if m.ids[stream] == nil {
		m.ids[stream] = map[string]bool{}
	}
	for _, ev := range evs {
		m.ids[stream][ev.ID] = true
	}
	m.mu.Unlock()
	return len(evs), nil
}

func chartOf(p events.Payload) events.SPCChartRef {
	switch e := p.(type) {
	case *events.SPCLimitsEstablished:
		return e.Chart
	case *events.SPCRuleViolated:
		return e.Chart
	}
	return events.SPCChartRef{}
}
