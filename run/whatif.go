package run

import (
	"maps"
	"slices"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/r2r"
	"github.com/spectra-fab/spectra/process/spc"
)

// Setting is an alternative run-to-run setting for a what-if: the EWMA
// weight, the loops' targets, or R2R off. The zero Setting is the one
// Spectra runs with (r2r.Lambda, the loops' own targets).
type Setting struct {
	Off     bool               `json:"off,omitempty"`
	Lambda  float64            `json:"lambda,omitempty"`
	Targets map[string]float64 `json:"targets,omitempty"`
}

// WhatIfRun is one run's run-to-run decision as recorded and as the
// alternative setting would have taken it, and the loops' measurements:
// recorded, and counterfactual (y − u + u′: every loop models y = a + u).
type WhatIfRun struct {
	RunID    string             `json:"run_id"`
	JobID    string             `json:"job_id"`
	Thread   string             `json:"thread"`
	Recorded map[string]float64 `json:"recorded"`
	WhatIf   map[string]float64 `json:"what_if"`
	Same     bool               `json:"same"`
	// Measured and Counterfactual are set for a run that completed.
	Measured       map[string]float64 `json:"measured,omitempty"`
	Counterfactual map[string]float64 `json:"counterfactual,omitempty"`
}

// WhatIfChart is one loop's individuals chart of a thread over the runs
// in range: limits from the recorded baseline, and the rule violations of
// the recorded and of the counterfactual measurements.
type WhatIfChart struct {
	Thread   string          `json:"thread"`
	Loop     string          `json:"loop"`
	Points   int             `json:"points"`
	Limits   spc.Limits      `json:"limits"`
	Recorded []spc.Violation `json:"recorded"`
	WhatIf   []spc.Violation `json:"what_if"`
}

// WhatIfReport is what WhatIf answers.
type WhatIfReport struct {
	Setting   Setting       `json:"setting"`
	Runs      []WhatIfRun   `json:"runs"`
	Decisions int           `json:"decisions"`
	Changed   int           `json:"changed"`
	Charts    []WhatIfChart `json:"charts"`
}

type shadowRun struct {
	runID, jobID, thread string
	kind                 process.Kind
	loops                []string
	recorded, whatIf     map[string]float64
	idx                  int // into the report's runs, -1 out of range
}

type series struct{ y, yc []float64 }

// WhatIf replays recorded runs through the run-to-run law under setting
// s into a shadow of the R2R projection: recs are run-stream records of
// one organisation in position order (RunRequested, RunStarted,
// RunCompleted; others are skipped), inRange says which runs to answer.
// Every run's start takes the shadow thread's recommendation, as the live
// node took the projection's (none before a thread has learnt anything,
// none with R2R off); every completion teaches the shadow thread its
// counterfactual measurement. The physics is not re-simulated: a run's
// counterfactual measurement is its recorded one moved by the change of
// adjustment (unit gain). Charts are individuals charts per thread and
// loop with limits from the first baseline recorded points. It writes
// nothing; with the zero Setting it reproduces the recorded decisions
// when the live projection had caught up at each start.
func WhatIf(recs []events.Record, s Setting, inRange func(runID string) bool, baseline int) WhatIfReport {
	rep := WhatIfReport{Setting: s, Runs: []WhatIfRun{}, Charts: []WhatIfChart{}}
	threads := map[string]map[string]r2r.EWMA{}
	runs := map[string]*shadowRun{}
	charts := map[[2]string]*series{}
	var chartOrder [][2]string
	for _, rec := range recs {
		if events.Category(rec.Stream) != events.CategoryRun {
			continue
		}
		runID := events.StreamID(rec.Stream)
		switch events.BaseType(rec.Type) {
		case events.TypeRunRequested, events.TypeRunStarted, events.TypeRunCompleted:
		default:
			continue
		}
		p, err := events.Decode(rec)
		if err != nil {
			continue
		}
		switch e := p.(type) {
		case *events.RunRequested:
			rc, err := R2RClass(e.Kind, e.Recipe)
			if err != nil || runs[runID] != nil {
				continue
			}
			thread := rec.Metadata.OrgID + "/" + string(e.Kind) + "/" + e.ToolID + "/" + rc.Name
			runs[runID] = &shadowRun{runID: runID, jobID: e.JobID, thread: thread, kind: e.Kind, loops: rc.Loops, idx: -1}
		case *events.RunStarted:
			r := runs[runID]
			if r == nil {
				continue
			}
			r.jobID = e.JobID
			r.recorded = maps.Clone(e.R2R)
			if r.recorded == nil {
				r.recorded = map[string]float64{}
			}
			r.whatIf = map[string]float64{}
			if t, ok := threads[r.thread]; ok && !s.Off {
				for _, l := range R2RLoops(r.kind) {
					if c, ok := t[l.Key]; ok {
						r.whatIf[l.Key] = c.Recommend()
					}
				}
			}
			r.idx = -1
			if inRange(runID) {
				same := maps.Equal(r.recorded, r.whatIf)
				rep.Runs = append(rep.Runs, WhatIfRun{RunID: runID, JobID: e.JobID, Thread: r.thread,
					Recorded: r.recorded, WhatIf: r.whatIf, Same: same})
				r.idx = len(rep.Runs) - 1
				rep.Decisions++
				if !same {
					rep.Changed++
				}
			}
		case *events.RunCompleted:
			r := runs[runID]
			if r == nil || r.whatIf == nil {
				continue
			}
			_, obs, err := Outcome(r.kind, e)
			if err != nil || obs == nil {
				continue
			}
			measured, counter := map[string]float64{}, map[string]float64{}
			for _, l := range R2RLoops(r.kind) {
				if !slices.Contains(r.loops, l.Key) {
					continue
				}
				u, ok := r.recorded[l.Key]
				if !ok {
					u = l.Unset
				}
				u2, ok := r.whatIf[l.Key]
				if !ok {
					u2 = l.Unset
				}
				y, ok := l.Measure(obs, u)
				if !ok || y != y {
					continue
				}
				y2 := y
				if u2 != u {
					y2 = y - u + u2
				}
				measured[l.Key], counter[l.Key] = y, y2
				if s.Off {
					continue
				}
				t := threads[r.thread]
				if t == nil {
					t = map[string]r2r.EWMA{}
					threads[r.thread] = t
				}
				c, ok := t[l.Key]
				if !ok {
					c = newController(l, s)
				}
				t[l.Key] = c.UpdateApplied(y2, u2)
			}
			if r.idx >= 0 && len(measured) > 0 {
				rep.Runs[r.idx].Measured, rep.Runs[r.idx].Counterfactual = measured, counter
				for k := range measured {
					key := [2]string{r.thread, k}
					if charts[key] == nil {
						charts[key] = &series{}
						chartOrder = append(chartOrder, key)
					}
					charts[key].y = append(charts[key].y, measured[k])
					charts[key].yc = append(charts[key].yc, counter[k])
				}
			}
			r.whatIf = nil
		}
	}
	for _, key := range chartOrder {
		sr := charts[key]
		n := min(max(baseline, 2), len(sr.y))
		lim := spc.IndividualsLimits(sr.y[:n])
		rec, wi := spc.Rules(sr.y, lim), spc.Rules(sr.yc, lim)
		if rec == nil {
			rec = []spc.Violation{}
		}
		if wi == nil {
			wi = []spc.Violation{}
		}
		rep.Charts = append(rep.Charts, WhatIfChart{Thread: key[0], Loop: key[1], Points: len(sr.y), Limits: lim,
			Recorded: rec, WhatIf: wi})
	}
	return rep
}

// newController is loop l's controller before any run under setting s.
func newController(l r2r.Loop, s Setting) r2r.EWMA {
	if s.Lambda == 0 && s.Targets[l.Key] == 0 {
		return l.New()
	}
	lambda, target := r2r.Lambda, l.Target
	if s.Lambda != 0 {
		lambda = s.Lambda
	}
	if t, ok := s.Targets[l.Key]; ok {
		target = t
	}
	e := r2r.NewEWMA(lambda, target)
	e.Min, e.Max = l.Min, l.Max
	e.Applied = e.Recommend()
	return e
}
