package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/spc"
)

// ParameterT2 is the parameter name of the multivariate charts among the
// SPC charts.
const ParameterT2 = "hotelling_t2"

// RuleT2 is the rule a run breaks when its summary's T² exceeds the
// library's limit.
const RuleT2 = "T2"

// t2Variables are the summary vector of each kind's runs, by result name
// (docs/monitoring.md, "Multivariate check"). RTP has none yet.
var t2Variables = map[process.Kind][]string{
	process.KindIon: ion.SummaryFields,
}

// MultivariateConfig configures the multivariate check.
type MultivariateConfig struct {
	// Library is how many good runs of a tool and recipe class make its
	// library (default 50; more than the variables + 1: with few runs the
	// covariance is poorly known and the limit, which allows for that,
	// is high — 15.8 at 30 runs, 14.6 at 50, 12.7 at 120 for two
	// variables).
	Library int
	// Alpha is the false-alarm probability per checked run (default
	// 0.0027, a 3σ chart's).
	Alpha float64
}

// t2Method describes how a multivariate chart's limit is computed.
const t2Method = "Hotelling T² of the run's summary vector against a library of the tool and recipe class's first good runs " +
	"(completed, no within-run alarm); UCL = p(m+1)(m−1)/(m(m−p))·F₁₋α(p, m−p), the Phase II limit for one new run"

// t2Point is one completed run of a multivariate chart.
type t2Point struct {
	RunID    string    `json:"run_id"`
	JobID    string    `json:"job_id"`
	Values   []float64 `json:"values"`
	Time     time.Time `json:"time"`
	Position uint64    `json:"position"`
	EventID  string    `json:"event_id"`
	Library  bool      `json:"library"` // taken into the library
	Alarmed  bool      `json:"alarmed"` // raised a within-run alarm
}

// t2Chart is the state of one tool and recipe class's multivariate
// chart: the runs in completion order; the library is the first Library
// good ones.
type t2Chart struct {
	OrgID    string       `json:"org_id"`
	Kind     process.Kind `json:"kind"`
	ToolID   string       `json:"tool_id"`
	Class    string       `json:"class"`
	Points   []t2Point    `json:"points"`
	Position uint64       `json:"position"`

	lib *spc.T2Library // derived from the library points (not snapshotted)
	// The library points' values in order, and for each variable whether
	// it is 0 in all of them (derived, not snapshotted): while one is,
	// the library cannot build (spc.NewT2Library refuses a constant
	// variable), so a chart whose runs lack a variable (a 0 in every
	// summary) does not try again with every run.
	libRuns [][]float64
	zero    []bool
	ragged  bool // library points of different lengths (NewT2Library refuses them)
}

// addLibrary takes a library point's values into the chart's derived
// library state.
func (c *t2Chart) addLibrary(x []float64) {
	if len(c.libRuns) == 0 {
		c.zero = make([]bool, len(x))
		for j, v := range x {
			c.zero[j] = v == 0
		}
	} else if len(x) != len(c.zero) {
		c.ragged = true
	} else {
		for j, v := range x {
			c.zero[j] = c.zero[j] && v == 0
		}
	}
	c.libRuns = append(c.libRuns, x)
}

// cannotBuild reports whether the library points have a variable 0 in
// all of them, which spc.NewT2Library refuses.
func (c *t2Chart) cannotBuild() bool {
	return !c.ragged && slices.Contains(c.zero, true)
}

type t2Run struct {
	OrgID  string       `json:"org_id"`
	Kind   process.Kind `json:"kind"`
	ToolID string       `json:"tool_id"`
	Class  string       `json:"class"`
}

// Multivariate is the multivariate (Hotelling T²) check as a read model:
// per organisation, tool and recipe class (run.R2RClass), each completed
// run's summary vector (t2Variables, from its result); the first Library
// runs that raised no within-run alarm make the good-run library (mean,
// covariance, limit); every later run gets its T², and one above the limit
// is an alert — a combination of small shifts that no single chart sees.
// Everything comes from the log, so a rebuild gives the identical charts
// and alerts. The charts are served among the SPC charts (parameter
// hotelling_t2, rule T2).
type Multivariate struct {
	cfg MultivariateConfig

	mu      sync.RWMutex
	runs    map[string]t2Run
	charts  map[string]*t2Chart
	order   []string
	classes recipeClasses
}

var _ Projection = (*Multivariate)(nil)

// NewMultivariate returns an empty multivariate check.
func NewMultivariate(cfg MultivariateConfig) *Multivariate {
	if cfg.Library <= 0 {
		cfg.Library = 50
	}
	if !(cfg.Alpha > 0 && cfg.Alpha < 1) {
		cfg.Alpha = 0.0027
	}
	m := &Multivariate{cfg: cfg}
	m.Reset()
	return m
}

// Name implements Projection.
func (m *Multivariate) Name() string { return "multivariate" }

// Reset implements Projection.
func (m *Multivariate) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs, m.charts, m.order = map[string]t2Run{}, map[string]*t2Chart{}, nil
}

type t2Snapshot struct {
	Runs   map[string]t2Run `json:"runs"`
	Charts []*t2Chart       `json:"charts"`
}

// Snapshot implements Projection.
func (m *Multivariate) Snapshot() ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	snap := t2Snapshot{Runs: m.runs}
	for _, k := range m.order {
		snap.Charts = append(snap.Charts, m.charts[k])
	}
	return json.Marshal(snap)
}

// Restore implements Projection.
func (m *Multivariate) Restore(data []byte) error {
	var snap t2Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("restore multivariate: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs, m.charts, m.order = snap.Runs, map[string]*t2Chart{}, nil
	if m.runs == nil {
		m.runs = map[string]t2Run{}
	}
	for _, c := range snap.Charts {
		k := t2Key(c.OrgID, c.Kind, c.ToolID, c.Class)
		m.charts[k] = c
		m.order = append(m.order, k)
		for _, p := range c.Points {
			if p.Library {
				c.addLibrary(p.Values)
			}
		}
		m.build(c)
	}
	return nil
}

func t2Key(orgID string, kind process.Kind, toolID, class string) string {
	return orgID + "\x00" + string(kind) + "\x00" + toolID + "\x00" + class
}

// Wants implements Selective: runs' requests and completions.
func (m *Multivariate) Wants(category, baseType string) bool {
	return category == events.CategoryRun && (baseType == events.TypeRunRequested || baseType == events.TypeRunCompleted)
}

// Apply implements Projection.
func (m *Multivariate) Apply(rec events.Record) error {
	if !m.Wants(events.Category(rec.Stream), events.BaseType(rec.Type)) {
		return nil
	}
	return m.applyDecoded(rec, decodedOf(rec))
}

// decodes implements decoder.
func (m *Multivariate) decodes(_, _ string) bool { return true }

// applyDecoded implements decoder.
func (m *Multivariate) applyDecoded(rec events.Record, d *decoded) error {
	p, err := d.p, d.err
	if err != nil {
		return err
	}
	runID := events.StreamID(rec.Stream)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e := p.(type) {
	case *events.RunRequested:
		if _, ok := t2Variables[e.Kind]; !ok {
			return nil
		}
		if _, dup := m.runs[runID]; dup {
			return nil
		}
		rc, err := m.classes.of(e.Kind, e.Recipe)
		if err != nil {
			return nil //nolint:nilerr // a recipe we cannot classify has no library
		}
		m.runs[runID] = t2Run{OrgID: rec.Metadata.OrgID, Kind: e.Kind, ToolID: e.ToolID, Class: rc.Name}
	case *events.RunCompleted:
		r, ok := m.runs[runID]
		if !ok {
			return nil
		}
		x, alarmed, ok := summaryOf(d, r.Kind, e)
		if !ok {
			return nil
		}
		k := t2Key(r.OrgID, r.Kind, r.ToolID, r.Class)
		c, ok := m.charts[k]
		if !ok {
			c = &t2Chart{OrgID: r.OrgID, Kind: r.Kind, ToolID: r.ToolID, Class: r.Class, Points: []t2Point{}}
			m.charts[k] = c
			m.order = append(m.order, k)
		}
		pt := t2Point{RunID: runID, JobID: e.JobID, Values: x, Time: rec.Time, Position: rec.Position, EventID: rec.ID, Alarmed: alarmed}
		if c.lib == nil && !alarmed {
			pt.Library = true
		}
		c.Points = append(c.Points, pt)
		c.Position = rec.Position
		if pt.Library {
			c.addLibrary(x)
			m.build(c)
		}
	}
	return nil
}

// summaryOf returns a completed run's summary vector and whether it raised
// a within-run alarm; false when its result lacks a variable.
func summaryOf(d *decoded, kind process.Kind, e *events.RunCompleted) ([]float64, bool, bool) {
	figures, err := d.resultFigures(kind, e)
	if err != nil {
		return nil, false, false
	}
	var x []float64
	for _, name := range t2Variables[kind] {
		v, ok := figures[name]
		if !ok {
			return nil, false, false
		}
		x = append(x, v)
	}
	spcAlerts, fdcAlarms := d.alarmCounts(e)
	return x, spcAlerts+fdcAlarms > 0, true
}

// build makes the chart's library once it has Library good runs; call
// with mu held. A library whose covariance is singular waits for more
// runs (each good run joins until it builds).
func (m *Multivariate) build(c *t2Chart) {
	if c.lib != nil || len(c.libRuns) < m.cfg.Library || c.cannotBuild() {
		return
	}
	if lib, err := spc.NewT2Library(c.libRuns, m.cfg.Alpha); err == nil {
		c.lib = lib
		c.libRuns, c.zero = nil, nil // no point joins the library now
	}
}

// Charts returns the organisation's multivariate charts that match f as
// SPC charts: one point per completed run (its T², 0 while the library
// fills), the library's limit as UCL and its mean T² as the centre, and a
// T2 violation for every run after the library above the limit. A filter
// on another parameter matches none.
func (m *Multivariate) Charts(_ context.Context, f ChartFilter) []Chart {
	if f.Parameter != "" && f.Parameter != ParameterT2 {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Chart
	for _, k := range m.order {
		c := m.charts[k]
		if c.OrgID != f.OrgID || (f.Kind != "" && string(c.Kind) != f.Kind) || (f.ToolID != "" && c.ToolID != f.ToolID) {
			continue
		}
		out = append(out, m.view(c, f.Points))
	}
	return out
}

func (m *Multivariate) view(c *t2Chart, last int) Chart {
	v := Chart{OrgID: c.OrgID, Kind: string(c.Kind), ToolID: c.ToolID, Parameter: ParameterT2, RecipeClass: c.Class,
		Variables: slices.Clone(t2Variables[c.Kind]), Baseline: m.cfg.Library, TotalPts: len(c.Points),
		Position: c.Position, Points: []ChartPoint{}, Violations: []ChartViolation{}}
	first := 0
	if last > 0 && len(c.Points) > last {
		first = len(c.Points) - last
	}
	var libJobs []string
	var center float64
	for _, p := range c.Points {
		if p.Library {
			libJobs = append(libJobs, p.JobID)
			if c.lib != nil {
				center += c.lib.T2(p.Values) / float64(m.cfg.Library)
			}
		}
	}
	if c.lib != nil {
		v.Limits = &ChartLimits{Center: center, UCL: c.lib.UCL, LCL: 0, BaselineJobs: libJobs, Rules: []string{RuleT2},
			Method: t2Method + fmt.Sprintf(" (m = %d, p = %d, α = %g); variables: %s; library mean %s, sd %s",
				len(libJobs), len(c.lib.Mean), c.lib.Alpha, strings.Join(t2Variables[c.Kind], ", "), fmtVec(c.lib.Mean), fmtVec(c.lib.SD))}
		v.Baseline = len(libJobs)
	}
	lastLib := -1
	for i, p := range c.Points {
		if p.Library {
			lastLib = i
		}
	}
	for i, p := range c.Points {
		pt := ChartPoint{Index: i, RunID: p.RunID, JobID: p.JobID, Time: p.Time, Position: p.Position, EventID: p.EventID,
			Baseline: p.Library, Values: slices.Clone(p.Values), Rules: []string{}}
		if c.lib != nil {
			pt.Value = c.lib.T2(p.Values)
			if i > lastLib && pt.Value > c.lib.UCL {
				pt.Rules = []string{RuleT2}
				if i >= first {
					v.Violations = append(v.Violations, ChartViolation{Point: i, RunID: p.RunID, JobID: p.JobID, Value: pt.Value,
						Rule: RuleT2, Message: t2Message(c, p, pt.Value), Time: p.Time, Position: p.Position})
				}
			}
		}
		if i >= first {
			v.Points = append(v.Points, pt)
		}
	}
	return v
}

// t2Message explains a T² alert: the statistic, the limit and each
// variable's own standardised deviation, which is what shows that no
// single chart would have seen it.
func t2Message(c *t2Chart, p t2Point, t2 float64) string {
	z := c.lib.Z(p.Values)
	var parts []string
	for i, name := range t2Variables[c.Kind] {
		parts = append(parts, fmt.Sprintf("%s %.3g (z %+.1f)", name, p.Values[i], z[i]))
	}
	return fmt.Sprintf("T² %.1f above the limit %.1f of the %s library: %s", t2, c.lib.UCL, c.Class, strings.Join(parts, ", "))
}

func fmtVec(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.4g", x)
	}
	return "[" + strings.Join(s, ", ") + "]"
}
