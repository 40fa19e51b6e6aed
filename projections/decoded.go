package projections

import (
	"encoding/json"
	"sync"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// decoded is a record's payload as the runner decodes it once for every
// projection that reads it (events.Decode's payload p, or its error), and
// what several of them derive from a completed run, worked out once on
// first use: its outcome (run.Outcome: SPC, R2R and multivariate read
// it), its result's figures and alarm counts. All of it is shared: a
// projection reads it, keeps parts of it only to read them, and does not
// keep the decoded itself (the runner reuses it for a later record).
// Models applied in parallel read one decoded at once: p and err are set
// before they see it, and what is derived on first use is under mu.
type decoded struct {
	p   events.Payload
	err error
	ok  bool // p and err are set

	mu sync.Mutex // the fields below

	// run.Outcome(outKind, outOf)
	outOf   *events.RunCompleted
	outKind process.Kind
	res     process.Result
	obs     process.Observations
	outErr  error
	figures map[string]float64 // res.Figures(), nil until asked

	countsOf *events.RunCompleted
	spc, fdc int // countsOf's result's alarm counts
}

// decodedOf decodes rec for one projection's Apply.
func decodedOf(rec events.Record) *decoded {
	p, err := events.Decode(rec)
	return &decoded{p: p, err: err, ok: true}
}

// outcome is run.Outcome(kind, e), decoded once per record and kind. The
// result and observations are shared: read only.
func (d *decoded) outcome(kind process.Kind, e *events.RunCompleted) (process.Result, process.Observations, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.outcomeLocked(kind, e)
}

func (d *decoded) outcomeLocked(kind process.Kind, e *events.RunCompleted) (process.Result, process.Observations, error) {
	if d.outOf != e || d.outKind != kind {
		d.res, d.obs, d.outErr = run.Outcome(kind, e)
		d.outOf, d.outKind, d.figures = e, kind, nil
	}
	return d.res, d.obs, d.outErr
}

// resultFigures is the figures of e's result decoded as kind
// (process.Result.Figures), made once per record and kind: read only.
func (d *decoded) resultFigures(kind process.Kind, e *events.RunCompleted) (map[string]float64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	res, _, err := d.outcomeLocked(kind, e)
	if err != nil {
		return nil, err
	}
	if d.figures == nil {
		d.figures = res.Figures()
	}
	return d.figures, nil
}

// alarmCounts is the within-run SPC alerts and FDC alarms e's result
// counts (0 for a result that does not say), read once per record.
func (d *decoded) alarmCounts(e *events.RunCompleted) (spcAlerts, fdcAlarms int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.countsOf != e {
		var counts struct {
			SPC int `json:"spc_alerts_count"`
			FDC int `json:"fdc_alarms_count"`
		}
		_ = json.Unmarshal(e.Result, &counts)
		d.countsOf, d.spc, d.fdc = e, counts.SPC, counts.FDC
	}
	return d.spc, d.fdc
}

// reset empties d for another record (it is not in use).
func (d *decoded) reset() {
	d.p, d.err, d.ok = nil, nil, false
	d.outOf, d.outKind, d.res, d.obs, d.outErr, d.figures = nil, "", nil, nil, nil, nil
	d.countsOf, d.spc, d.fdc = nil, 0, 0
}
