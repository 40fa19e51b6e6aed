package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/fab"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// ownedRuns is the actor layer as the API and fab operations use it: each
// run created is told to the scheduler as its organisation's, for fair
// sharing of queue slots (actors/scheduler.go).
type ownedRuns struct{ *actors.Service }

func (o ownedRuns) CreateRun(ctx context.Context, c actors.CreateRun) (actors.Accepted, error) {
	acc, err := o.Service.CreateRun(ctx, c)
	if err == nil {
		o.Own(acc.RunID, c.Meta.OrgID)
	}
	return acc, err
}

// validators adapts the engine factories to the recipe library's
// validation: a saved recipe is checked as a run's would be.
func validators(engines map[process.Kind]actors.EngineFactory) map[process.Kind]fab.Validator {
	out := map[process.Kind]fab.Validator{}
	for k, f := range engines {
		out[k] = validatorFunc(f.Validate)
	}
	return out
}

type validatorFunc func(json.RawMessage) error

func (f validatorFunc) Validate(r json.RawMessage) error { return f(r) }

// scheduleTick is how often the schedule worker looks for due slots (wall
// time): at time scale 60 a one-minute cron slot comes every second.
const scheduleTick = 100 * time.Millisecond

// scheduleWorker fires due schedule slots. Any number of nodes may run
// one: a slot is claimed by an expected-revision append on the schedule's
// stream, so it fires once.
type scheduleWorker struct {
	fab   *fab.Service
	model *projections.Fab
	log   *slog.Logger
	now   func() time.Time
	// running reports whether a run of an organisation is running (nil:
	// paused lots are not held).
	running func(orgID, runID string) bool
}

// holdEvery is how many ticks pass between looks at paused lots;
// completeEvery between looks for lots short of runs, and completeGrace is
// how old such a lot must be (its creation may still be under way).
const (
	holdEvery     = 3
	completeEvery = 20
	completeGrace = 5 * time.Second
)

// Run fires slots until ctx ends. First, for every schedule, it starts
// again what the last firing should have started (idempotently), in case
// a crash came between the claim and the runs. It also completes lots
// whose creation a crash cut short: at start every such lot, then every
// two seconds those older than completeGrace.
func (w *scheduleWorker) Run(ctx context.Context) {
	cache := map[string]*fab.Schedule{}
	t := time.NewTicker(scheduleTick)
	defer t.Stop()
	for tick := 0; ; tick++ {
		if w.running != nil && tick%holdEvery == 0 {
			w.holdPausedLots(ctx)
		}
		if tick%completeEvery == 0 {
			before := w.now()
			if tick > 0 {
				before = before.Add(-completeGrace)
			}
			w.completeLots(ctx, before)
		}
		for _, s := range w.model.Schedules("") {
			if s.Paused || (s.At != nil && s.Firings+s.Skips > 0) {
				continue
			}
			sc, seen := cache[s.ScheduleID]
			if !seen {
				sc = &fab.Schedule{ScheduleID: s.ScheduleID}
				cache[s.ScheduleID] = sc
				if err := w.fab.Redrive(ctx, sc); err != nil && ctx.Err() == nil {
					w.log.Warn("schedule re-drive", "schedule_id", s.ScheduleID, "err", err)
				}
			}
			for range fab.MaxCatchUp + 1 {
				slot, err := w.fab.FireDue(ctx, sc, w.now())
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, fab.ErrNotFound) {
						w.log.Warn("schedule firing", "schedule_id", s.ScheduleID, "err", err)
					}
					break
				}
				if slot == nil {
					break
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// completeLots creates the missing runs of lots created at or before
// before that lack some (another node may be at it too: the runs' keys and
// the lot's expected revision make that harmless).
func (w *scheduleWorker) completeLots(ctx context.Context, before time.Time) {
	for _, l := range w.model.ShortLots(before) {
		start, err := w.fab.CompleteLot(ctx, l.OrgID, l.LotID)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("complete lot", "lot_id", l.LotID, "err", err)
			}
			continue
		}
		var started []string
		for _, ws := range start.Wafers {
			if ws.Error == "" {
				started = append(started, ws.WaferID)
			}
		}
		w.log.Info("lot completed after its creation was cut short", "lot_id", l.LotID, "wafers_with_runs", len(started),
			"wafers", len(start.Lot.Wafers))
	}
}

// killAfterLotRuns is a test hook: with SPECTRA_TEST_KILL_AFTER_LOT_RUNS=N
// in its environment, the process kills itself (SIGKILL: no shutdown of
// any kind) once it has created N lot wafer runs, after the N-th run is
// recorded in the store and before its lot records it. The crash-safety
// test of lot creation uses it. Without it (or with N < 1), nil.
func killAfterLotRuns(log *slog.Logger) func(lotID, waferID string) {
	n, err := strconv.Atoi(os.Getenv("SPECTRA_TEST_KILL_AFTER_LOT_RUNS"))
	if err != nil || n < 1 {
		return nil
	}
	var created atomic.Int64
	return func(lotID, waferID string) {
		if created.Add(1) != int64(n) {
			return
		}
		log.Warn("test hook: killing the process", "lot_id", lotID, "wafer_id", waferID, "runs", n)
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Kill()
		}
		select {} // until the signal lands
	}
}

// holdPausedLots pauses the wafers of paused lots that started running
// since (another node may pause the same wafer first: it answers 409,
// which is fine).
func (w *scheduleWorker) holdPausedLots(ctx context.Context) {
	for _, l := range w.model.PausedLots() {
		paused, err := w.fab.HoldLot(ctx, l.OrgID, l.LotID, func(runID string) bool { return w.running(l.OrgID, runID) })
		if err != nil && ctx.Err() == nil {
			w.log.Warn("hold paused lot", "lot_id", l.LotID, "err", err)
		}
		if len(paused) > 0 {
			w.log.Info("paused lot: wafers that started since paused", "lot_id", l.LotID, "runs", paused)
		}
	}
}

// Weights are the organisations' fair-share weights, written
// "org-1=2,org-2=1" on the command line.
type Weights map[string]float64

// MarshalText writes the weights sorted by organisation.
func (w Weights) MarshalText() ([]byte, error) {
	var parts []string
	for _, org := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, org+"="+strconv.FormatFloat(w[org], 'g', -1, 64))
	}
	return []byte(strings.Join(parts, ",")), nil
}

// UnmarshalText reads "org-1=2,org-2=1"; every weight is > 0.
func (w *Weights) UnmarshalText(b []byte) error {
	out := Weights{}
	for part := range strings.SplitSeq(string(b), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		org, v, ok := strings.Cut(part, "=")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if !ok || strings.TrimSpace(org) == "" || err != nil || f <= 0 {
			return fmt.Errorf("%q: want ORG=WEIGHT with a weight > 0", part)
		}
		out[strings.TrimSpace(org)] = f
	}
	*w = out
	return nil
}

// running reports whether a run of an organisation is running, as the
// job-status model has it.
func (n *Node) running(orgID, runID string) bool {
	r, err := n.jobs.Run(context.Background(), orgID, runID)
	return err == nil && r.Status == projections.StatusRunning
}
