package projections

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/spc"
)

// CategorySPC is the stream category of the chart-level SPC facts:
// spc-<org>-<kind>-<tool>-<hash>, written only by the SPCMonitor.
const CategorySPC = "spc"

// SPCStream returns the stream of the chart-level facts of one tool's runs
// of one kind in one organisation. Characters a stream name cannot hold
// become '_', and a hash of the three parts keeps different charts apart
// whatever their names.
func SPCStream(orgID string, kind process.Kind, toolID string) string {
	h := sha1.Sum([]byte(orgID + "\x00" + string(kind) + "\x00" + toolID))
	if toolID == "" {
		toolID = "_"
	}
	id := clean(orgID, 60) + "-" + clean(string(kind), 10) + "-" + clean(toolID, 60) + "-" + hex.EncodeToString(h[:5])
	return CategorySPC + "-" + id
}

func clean(s string, max int) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > max {
		b = b[:max]
	}
	return string(b)
}

// SPCConfig configures the run-to-run charts.
type SPCConfig struct {
	// Baseline is how many points, the first of a chart, fix its centre
	// line and control limits (default 20).
	Baseline int
	// Rules are checked on every point after the baseline (default
	// DefaultSPCRules).
	Rules []string
}

// DefaultSPCRules are the rules a chart checks unless configured: the
// Shewhart limit alone (WE1, at SPCLimitSigmas). A user counts every alert
// of a run, over all its charts (3 ion, about 10 RTP parameters), so the
// design is a family-wise per-run false-alarm budget, not a per-chart one:
// WE1–4 together have an in-control ARL of ≈ 92 points per chart (1.1 % a
// point), which on 10 charts flags about one nominal run in ten. The zone
// and run rules (WE2–4, Nelson) can be configured back for a tool that
// charts one or two parameters (docs/monitoring.md).
var DefaultSPCRules = []string{spc.WE1}

// SPCLimitSigmas is how many σ̂ the control limits sit from the centre
// line: 3.75, a per-chart, per-run false-alarm probability of 1.8·10⁻⁴
// with known parameters (ARL₀ ≈ 5,650), 0.18 % a run over ten charts. The
// margin over that pays for σ̂ and the centre estimated from a 20-run
// baseline: a baseline that happens to be quiet sets limits too tight for
// the 200 runs that follow (measured in docs/monitoring.md).
const SPCLimitSigmas = 3.75

// spcParameters are the results charted for each kind when the run's R2R
// observations lack them; every finite R2R observation is charted too.
var spcParameters = map[process.Kind][]string{
	process.KindIon: {"mean_beam_current_ma", "dose_error_pct", "dose_uniformity_pct"},
	process.KindRTP: {"max_overshoot_c", "temp_error_c", "avg_ramp_error_c"},
}

// limitsMethod describes how a chart's limits are computed; the transform
// it names (transformOf) is how a reader of the log charts its points.
const limitsMethod = "individuals chart: centre = baseline mean, sigma = the larger of mean moving range / 1.128 and the sample sd (at least the measurement resolution), limits = centre ± 3.75 sigma"

// Transforms of bounded or skewed parameters: the chart's statistics are
// computed on t(x) and its limits recorded back in the parameter's units.
const (
	methodLogNonUniformity = "on ln(100 − x), the log non-uniformity: "
	methodLog              = "on ln x: "
)

// spcTransforms names the parameters charted on a transform: a uniformity
// near its bound of 100 % (its non-uniformity 100 − x is a positive,
// right-skewed spread), and positive scale quantities (a standard
// deviation, an overshoot), whose log is close to normal.
var spcTransforms = map[string]string{
	"dose_uniformity_pct": methodLogNonUniformity,
	"hold_sigma_c":        methodLog,
	"max_overshoot_c":     methodLog,
}

// transform is a chart's t(x) with its inverse and derivative.
type transform struct {
	f, inv, deriv func(float64) float64
}

var (
	identity         = transform{func(x float64) float64 { return x }, func(t float64) float64 { return t }, func(float64) float64 { return 1 }}
	logNonUniformity = transform{func(x float64) float64 { return math.Log(100 - x) }, func(t float64) float64 { return 100 - math.Exp(t) },
		func(x float64) float64 { return -1 / (100 - x) }}
	logTransform = transform{math.Log, math.Exp, func(x float64) float64 { return 1 / x }}
)

// transformOf returns the transform a recorded method names.
func transformOf(method string) (transform, string) {
	switch {
	case strings.HasPrefix(method, methodLogNonUniformity):
		return logNonUniformity, "ln(100 − x)"
	case strings.HasPrefix(method, methodLog):
		return logTransform, "ln x"
	}
	return identity, ""
}

// chartLimits returns the limits of a chart of parameter from its baseline
// values, in the parameter's units, and the method that says how. A
// parameter with a transform is charted on it when every baseline value is
// in its domain. σ̂ is floored at the measurement resolution (the smallest
// step between distinct baseline values, or the last decimal of a constant
// one): a value reported in 0.1 s steps cannot have σ̂ 0.02 s, and a
// constant one would otherwise flag every point that differs by a rounding.
func chartLimits(parameter string, values []float64) (spc.Limits, string) {
	method := spcTransforms[parameter]
	tf, _ := transformOf(method)
	for _, x := range values {
		if v := tf.f(x); math.IsNaN(v) || math.IsInf(v, 0) {
			tf, method = identity, ""
			break
		}
	}
	tv := make([]float64, len(values))
	for i, x := range values {
		tv[i] = tf.f(x)
	}
	l := spc.IndividualsLimits(tv)
	sigma := max(l.Sigma, stdDev(tv), resolution(tv))
	if method == "" {
		return spc.NewLimitsAt(l.Center, sigma, SPCLimitSigmas), limitsMethod
	}
	a, b := tf.inv(l.Center-SPCLimitSigmas*sigma), tf.inv(l.Center+SPCLimitSigmas*sigma)
	center := tf.inv(l.Center)
	return spc.Limits{Center: center, LCL: min(a, b), UCL: max(a, b), Sigma: sigma / math.Abs(tf.deriv(center))}, method + limitsMethod
}

// SPCLimits returns the limits (in the parameter's units) a chart of
// parameter takes from its baseline values, as recorded.
func SPCLimits(parameter string, baseline []float64) spc.Limits {
	l, _ := chartLimits(parameter, baseline)
	return l
}

// transformedLimits returns the recorded limits on the chart's transform,
// as chartLimits computed them.
func transformedLimits(l ChartLimits, tf transform) spc.Limits {
	a, b := tf.f(l.LCL), tf.f(l.UCL)
	return spc.Limits{Center: tf.f(l.Center), LCL: min(a, b), UCL: max(a, b), Sigma: l.Sigma * math.Abs(tf.deriv(l.Center))}
}

// stdDev returns the sample standard deviation of values.
func stdDev(values []float64) float64 {
	if len(values) < 2 {
		return 0
	}
	var sum, sq float64
	for _, x := range values {
		sum += x
	}
	mean := sum / float64(len(values))
	for _, x := range values {
		sq += (x - mean) * (x - mean)
	}
	return math.Sqrt(sq / float64(len(values)-1))
}

// resolution returns the smallest step between distinct values, or, when
// all are equal, the unit of their last decimal (at most 9 decimals).
func resolution(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	scale := max(math.Abs(sorted[0]), math.Abs(sorted[len(sorted)-1]))
	step := math.Inf(1)
	for i := 1; i < len(sorted); i++ {
		if d := sorted[i] - sorted[i-1]; d > 1e-12*scale {
			step = min(step, d)
		}
	}
	if !math.IsInf(step, 1) {
		return step
	}
	if scale == 0 {
		return 0
	}
	// A constant: the unit of its last decimal, among its 12 leading digits.
	unit := math.Pow(10, math.Ceil(math.Log10(scale)))
	for range 12 {
		if r := scale / unit; math.Abs(r-math.Round(r)) < 1e-6 {
			break
		}
		unit /= 10
	}
	return unit
}

// ChartPoint is one run's value on a chart.
type ChartPoint struct {
	Index    int       `json:"index"`
	RunID    string    `json:"run_id"`
	JobID    string    `json:"job_id"`
	Value    float64   `json:"value"`
	Time     time.Time `json:"time"`
	Position uint64    `json:"position"`
	EventID  string    `json:"event_id"` // the RunCompleted it came from
	Baseline bool      `json:"baseline"`
	// Rules are the rules this point broke, as recorded.
	Rules []string `json:"rules"`
	// Values is the run's summary vector on a multivariate chart.
	Values []float64 `json:"values,omitempty"`
}

// ChartViolation is a recorded rule violation of a chart.
type ChartViolation struct {
	Point    int       `json:"point"`
	RunID    string    `json:"run_id"`
	JobID    string    `json:"job_id"`
	Value    float64   `json:"value"`
	Rule     string    `json:"rule"`
	Message  string    `json:"message"`
	Time     time.Time `json:"time"`
	Position uint64    `json:"position"`
}

// ChartLimits are a chart's centre line and control limits, with the
// baseline they came from.
type ChartLimits struct {
	Center       float64   `json:"center"`
	UCL          float64   `json:"ucl"`
	LCL          float64   `json:"lcl"`
	Sigma        float64   `json:"sigma"`
	BaselineJobs []string  `json:"baseline_jobs"`
	Rules        []string  `json:"rules"`
	Method       string    `json:"method"`
	Time         time.Time `json:"time"`
	Position     uint64    `json:"position"`
}

// Chart is a run-to-run control chart: one point per completed run of a
// tool for one parameter, the limits its baseline fixed (nil until the
// baseline is complete and recorded) and the violations recorded.
type Chart struct {
	OrgID      string           `json:"org_id"`
	Kind       string           `json:"kind"`
	ToolID     string           `json:"tool_id"`
	Parameter  string           `json:"parameter"`
	Stream     string           `json:"stream"` // where the chart's facts are recorded
	Baseline   int              `json:"baseline"`
	Limits     *ChartLimits     `json:"limits"`
	Points     []ChartPoint     `json:"points"`
	TotalPts   int              `json:"total_points"`
	Violations []ChartViolation `json:"violations"`
	Position   uint64           `json:"position"` // last log position that changed the chart
	// RecipeClass and Variables describe a multivariate chart
	// (projections.Multivariate): its recipe class and summary vector.
	RecipeClass string   `json:"recipe_class,omitempty"`
	Variables   []string `json:"variables,omitempty"`
}

// ChartFilter selects an organisation's charts. Empty fields match all.
type ChartFilter struct {
	OrgID     string
	Kind      string
	ToolID    string
	Parameter string
	// Points is how many of each chart's latest points to return, with
	// their violations (0: all).
	Points int
}

// chart is the state of one chart.
type chart struct {
	Ref        events.SPCChartRef `json:"ref"`
	Points     []ChartPoint       `json:"points"`
	Limits     *ChartLimits       `json:"limits,omitempty"`
	Violations []ChartViolation   `json:"violations"`
	Position   uint64             `json:"position"`

	// Derived from the above (not snapshotted): the rules monitor, the
	// points it has seen, and what it found.
	recorded map[string]bool // violation keys
	mon      *spc.Monitor
	tf       transform // the chart's transform, from its limits' method
	tfName   string
	fed      int
	found    []events.SPCRuleViolated
}

func violationKey(jobID, rule string, point int) string {
	return fmt.Sprintf("%s|%s|%d", jobID, rule, point)
}

type spcRun struct {
	OrgID  string       `json:"org_id"`
	Kind   process.Kind `json:"kind"`
	ToolID string       `json:"tool_id"`
}

// SPCCharts is the run-to-run SPC read model: per organisation, process
// kind, tool and parameter, one point per completed run, taken from the
// run's R2R observations (and a few results), with the limits and
// violations the SPCMonitor recorded in the tool's SPC stream.
//
// Everything it shows comes from the log: points from RunCompleted, limits
// from SPCLimitsEstablished, violations from SPCRuleViolated. Rebuilding
// it gives the identical charts. It also works out, from the same state,
// the facts not recorded yet (Pending) for the monitor to record.
type SPCCharts struct {
	cfg SPCConfig

	mu      sync.RWMutex
	runs    map[string]spcRun
	charts  map[events.SPCChartRef]*chart
	order   []events.SPCChartRef
	streams map[string]uint64 // spc stream → last revision seen
	changed chan struct{}
}

var _ Projection = (*SPCCharts)(nil)

// NewSPCCharts returns an empty SPC read model.
func NewSPCCharts(cfg SPCConfig) *SPCCharts {
	if cfg.Baseline <= 0 {
		cfg.Baseline = 20
	}
	if len(cfg.Rules) == 0 {
		cfg.Rules = DefaultSPCRules
	}
	spc.NewMonitor(spc.Limits{}, cfg.Rules...) // panics on an unknown rule: a wiring mistake
	s := &SPCCharts{cfg: cfg, changed: make(chan struct{})}
	s.Reset()
	return s
}

// Name implements Projection.
func (s *SPCCharts) Name() string { return "spc" }

// Reset implements Projection.
func (s *SPCCharts) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs, s.charts, s.order, s.streams = map[string]spcRun{}, map[events.SPCChartRef]*chart{}, nil, map[string]uint64{}
	s.notify()
}

// notify wakes whoever waits on Changed; call with mu held.
func (s *SPCCharts) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Changed is closed the next time the model changes.
func (s *SPCCharts) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

type spcSnapshot struct {
	Runs    map[string]spcRun `json:"runs"`
	Charts  []*chart          `json:"charts"`
	Streams map[string]uint64 `json:"streams"`
}

// Snapshot implements Projection.
func (s *SPCCharts) Snapshot() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap := spcSnapshot{Runs: s.runs, Streams: s.streams}
	for _, k := range s.order {
		snap.Charts = append(snap.Charts, s.charts[k])
	}
	return json.Marshal(snap)
}

// Restore implements Projection.
func (s *SPCCharts) Restore(data []byte) error {
	var snap spcSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("restore spc: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs, s.streams = snap.Runs, snap.Streams
	if s.runs == nil {
		s.runs = map[string]spcRun{}
	}
	if s.streams == nil {
		s.streams = map[string]uint64{}
	}
	s.charts, s.order = map[events.SPCChartRef]*chart{}, nil
	for _, c := range snap.Charts {
		c.recorded = map[string]bool{}
		for _, v := range c.Violations {
			c.recorded[violationKey(v.JobID, v.Rule, v.Point)] = true
		}
		s.charts[c.Ref] = c
		s.order = append(s.order, c.Ref)
		s.check(c)
	}
	s.notify()
	return nil
}

// Wants implements Selective: runs' requests and completions, and every
// record of SPC streams.
func (s *SPCCharts) Wants(category, baseType string) bool {
	switch category {
	case events.CategoryRun:
		return baseType == events.TypeRunRequested || baseType == events.TypeRunCompleted
	case CategorySPC:
		return true
	}
	return false
}

// Apply implements Projection.
func (s *SPCCharts) Apply(rec events.Record) error {
	cat := events.Category(rec.Stream)
	if !s.Wants(cat, events.BaseType(rec.Type)) {
		return nil
	}
	if cat == CategorySPC {
		return s.applySPC(rec)
	}
	return s.applyDecoded(rec, decodedOf(rec))
}

// decodes implements decoder: the records of run streams (SPC streams'
// are read in applySPC).
func (s *SPCCharts) decodes(category, _ string) bool { return category == events.CategoryRun }

// applyDecoded implements decoder: a run's request or completion.
func (s *SPCCharts) applyDecoded(rec events.Record, d *decoded) error {
	p, err := d.p, d.err
	if err != nil {
		return err
	}
	runID := events.StreamID(rec.Stream)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := p.(type) {
	case *events.RunRequested:
		if _, dup := s.runs[runID]; !dup {
			s.runs[runID] = spcRun{OrgID: rec.Metadata.OrgID, Kind: e.Kind, ToolID: e.ToolID}
		}
	case *events.RunCompleted:
		run, ok := s.runs[runID]
		if !ok {
			return nil
		}
		for _, name := range chartParameters(d, run.Kind, e) {
			ref := events.SPCChartRef{OrgID: run.OrgID, Kind: run.Kind, ToolID: run.ToolID, Parameter: name.name}
			c := s.chart(ref)
			c.Points = append(c.Points, ChartPoint{Index: len(c.Points), RunID: runID, JobID: e.JobID,
				Value: name.value, Time: rec.Time, Position: rec.Position, EventID: rec.ID, Rules: []string{}})
			c.Position = rec.Position
			s.check(c)
		}
		s.notify()
	}
	return nil
}

type namedValue struct {
	name  string
	value float64
}

// chartParameters returns the values a completed run puts on its charts,
// by name: every finite R2R observation, and the kind's charted results
// the observations lack.
func chartParameters(d *decoded, kind process.Kind, e *events.RunCompleted) []namedValue {
	figures, err := d.resultFigures(kind, e)
	if err != nil {
		return nil
	}
	_, obs, _ := d.outcome(kind, e)
	var out []namedValue
	seen := map[string]bool{}
	if obs != nil {
		for name, v := range obs.Values() {
			out = append(out, namedValue{name, v})
			seen[name] = true
		}
	}
	for _, name := range spcParameters[kind] {
		if v, ok := figures[name]; ok && !seen[name] {
			out = append(out, namedValue{name, v})
		}
	}
	slices.SortFunc(out, func(a, b namedValue) int { return strings.Compare(a.name, b.name) })
	return out
}

// chart returns the chart of ref, creating it; call with mu held.
func (s *SPCCharts) chart(ref events.SPCChartRef) *chart {
	c, ok := s.charts[ref]
	if !ok {
		c = &chart{Ref: ref, Points: []ChartPoint{}, Violations: []ChartViolation{}, recorded: map[string]bool{}}
		s.charts[ref] = c
		s.order = append(s.order, ref)
	}
	return c
}

func (s *SPCCharts) applySPC(rec events.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev, ok := s.streams[rec.Stream]; !ok || rec.Revision > rev {
		s.streams[rec.Stream] = rec.Revision
	}
	defer s.notify()
	p, err := events.Decode(rec)
	if err != nil {
		return err
	}
	switch e := p.(type) {
	case *events.SPCLimitsEstablished:
		c := s.chart(e.Chart)
		if c.Limits != nil {
			return nil // the first record stands
		}
		c.Limits = &ChartLimits{Center: e.Center, UCL: e.UCL, LCL: e.LCL, Sigma: e.Sigma,
			BaselineJobs: e.BaselineJobs, Rules: e.Rules, Method: e.Method, Time: rec.Time, Position: rec.Position}
		c.Position = rec.Position
		s.check(c)
	case *events.SPCRuleViolated:
		c := s.chart(e.Chart)
		key := violationKey(e.JobID, e.Rule, e.Point)
		if c.recorded[key] {
			return nil
		}
		c.recorded[key] = true
		c.Violations = append(c.Violations, ChartViolation{Point: e.Point, RunID: e.RunID, JobID: e.JobID,
			Value: e.Value, Rule: e.Rule, Message: e.Message, Time: rec.Time, Position: rec.Position})
		if e.Point >= 0 && e.Point < len(c.Points) && c.Points[e.Point].JobID == e.JobID {
			c.Points[e.Point].Rules = append(c.Points[e.Point].Rules, e.Rule)
		}
		// found keeps only what is still to record.
		c.found = slices.DeleteFunc(c.found, func(v events.SPCRuleViolated) bool {
			return c.recorded[violationKey(v.JobID, v.Rule, v.Point)]
		})
		c.Position = rec.Position
	}
	return nil
}

// check runs the chart's rules over the points the monitor has not seen
// yet, once its limits are recorded; call with mu held.
func (s *SPCCharts) check(c *chart) {
	if c.Limits == nil {
		return
	}
	if c.mon == nil {
		rules := c.Limits.Rules
		if len(rules) == 0 {
			rules = s.cfg.Rules
		}
		c.tf, c.tfName = transformOf(c.Limits.Method)
		c.mon = spc.NewMonitor(transformedLimits(*c.Limits, c.tf), knownRules(rules)...)
	}
	// The monitor sees the baseline too, so a run rule counts the points
	// just before the first one it judges and the messages name chart
	// indices; only points after the baseline are judged.
	for ; c.fed < len(c.Points); c.fed++ {
		pt := c.Points[c.fed]
		vs := c.mon.Add(c.tf.f(pt.Value))
		if c.fed < len(c.Limits.BaselineJobs) {
			continue
		}
		for _, v := range vs {
			if v.Rule == spc.WE1 {
				v.Message = we1Message(c.fed, pt.Value, *c.Limits, c.tfName)
			} else if c.tfName != "" {
				v.Message += " (on " + c.tfName + ")"
			}
			c.found = append(c.found, events.SPCRuleViolated{Chart: c.Ref, RunID: pt.RunID, JobID: pt.JobID,
				Point: c.fed, Value: pt.Value, Rule: v.Rule, Message: v.Message})
		}
	}
}

// we1Message says which recorded limit point i's value x is beyond.
func we1Message(i int, x float64, l ChartLimits, on string) string {
	side, limit, name := "above", l.UCL, "upper"
	if x < l.Center {
		side, limit, name = "below", l.LCL, "lower"
	}
	k := "beyond the limit"
	if l.Sigma > 0 && on == "" {
		k = fmt.Sprintf("beyond %.3gσ", math.Abs(limit-l.Center)/l.Sigma)
	} else if on != "" {
		k = "limits on " + on
	}
	return fmt.Sprintf("WE1: point %d = %.4g is %s the %s control limit %.4g (%s)", i, x, side, name, limit, k)
}

// knownRules drops rule names spc does not know (a recorded rule set from
// a newer version), so an old reader never panics on the log.
func knownRules(rules []string) []string {
	var out []string
	for _, r := range rules {
		if slices.Contains(spc.Nelson, r) || slices.Contains(spc.WesternElectric, r) {
			out = append(out, r)
		}
	}
	return out
}

// SPCFact is a chart-level fact the log lacks yet: what the SPCMonitor
// appends.
type SPCFact struct {
	Stream  string
	ID      string // deterministic, so recording it twice appends nothing twice
	Payload events.Payload
	// Cause is the run event that made it due (its id), and Run its run.
	Cause, Run string
}

// Pending returns, stream by stream, the facts the charts call for that
// the log does not hold yet, and the last revision of each stream seen
// (-1: none): limits for every chart whose baseline is complete, and the
// violations of the points checked against recorded limits.
func (s *SPCCharts) Pending() (facts map[string][]SPCFact, revisions map[string]int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	facts, revisions = map[string][]SPCFact{}, map[string]int64{}
	for _, ref := range s.order {
		c := s.charts[ref]
		stream := SPCStream(ref.OrgID, ref.Kind, ref.ToolID)
		var due []SPCFact
		if c.Limits == nil && len(c.Points) >= s.cfg.Baseline {
			base := c.Points[:s.cfg.Baseline]
			values := make([]float64, len(base))
			jobs := make([]string, len(base))
			for i, p := range base {
				values[i], jobs[i] = p.Value, p.JobID
			}
			l, method := chartLimits(ref.Parameter, values)
			due = append(due, SPCFact{Stream: stream, ID: events.DeriveID(stream, "limits", ref.Parameter),
				Cause: base[len(base)-1].EventID, Run: base[len(base)-1].RunID,
				Payload: &events.SPCLimitsEstablished{Chart: ref, Center: l.Center, UCL: l.UCL, LCL: l.LCL, Sigma: l.Sigma,
					BaselineJobs: jobs, Rules: slices.Clone(s.cfg.Rules), Method: method}})
		}
		for _, v := range c.found {
			if c.recorded[violationKey(v.JobID, v.Rule, v.Point)] {
				continue
			}
			due = append(due, SPCFact{Stream: stream, ID: events.DeriveID(stream, "violation", ref.Parameter, v.JobID, v.Rule, fmt.Sprint(v.Point)),
				Cause: c.Points[v.Point].EventID, Run: v.RunID, Payload: &v})
		}
		if len(due) == 0 {
			continue
		}
		facts[stream] = append(facts[stream], due...)
		if rev, ok := s.streams[stream]; ok {
			revisions[stream] = int64(rev)
		} else {
			revisions[stream] = -1
		}
	}
	return facts, revisions
}

// Charts returns the organisation's charts that match f, in the order they
// were first drawn; ErrNotFound when none does.
func (s *SPCCharts) Charts(_ context.Context, f ChartFilter) ([]Chart, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Chart
	for _, ref := range s.order {
		if ref.OrgID != f.OrgID || (f.Kind != "" && string(ref.Kind) != f.Kind) ||
			(f.ToolID != "" && ref.ToolID != f.ToolID) || (f.Parameter != "" && ref.Parameter != f.Parameter) {
			continue
		}
		out = append(out, s.view(s.charts[ref], f.Points))
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

func (s *SPCCharts) view(c *chart, last int) Chart {
	v := Chart{OrgID: c.Ref.OrgID, Kind: string(c.Ref.Kind), ToolID: c.Ref.ToolID, Parameter: c.Ref.Parameter,
		Stream: SPCStream(c.Ref.OrgID, c.Ref.Kind, c.Ref.ToolID), Baseline: s.cfg.Baseline,
		TotalPts: len(c.Points), Position: c.Position, Violations: []ChartViolation{}}
	if c.Limits != nil {
		l := *c.Limits
		l.BaselineJobs, l.Rules = slices.Clone(l.BaselineJobs), slices.Clone(l.Rules)
		v.Limits, v.Baseline = &l, len(l.BaselineJobs)
	}
	pts := c.Points
	if last > 0 && len(pts) > last {
		pts = pts[len(pts)-last:]
	}
	first := len(c.Points) - len(pts)
	for _, cv := range c.Violations {
		if cv.Point >= first {
			v.Violations = append(v.Violations, cv)
		}
	}
	v.Points = make([]ChartPoint, len(pts))
	for i, p := range pts {
		p.Baseline = p.Index < v.Baseline
		p.Rules = slices.Clone(p.Rules)
		v.Points[i] = p
	}
	return v
}
