package projections

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
)

// RecipeSummary is a library recipe as lists show it.
type RecipeSummary struct {
	Name           string    `json:"name"`
	Kind           string    `json:"kind"`
	Latest         int       `json:"latest_version"`
	LatestApproved int       `json:"latest_approved_version"`
	Approved       []int     `json:"approved_versions"`
	UpdatedAt      time.Time `json:"updated_at"`
	UpdatedBy      string    `json:"updated_by"`
}

// LotSummary is a lot as lists show it.
type LotSummary struct {
	LotID      string           `json:"lot_id"`
	Kind       string           `json:"kind"`
	Recipe     events.RecipeRef `json:"recipe"`
	Wafers     int              `json:"wafers"`
	Started    int              `json:"started"`
	Rejected   int              `json:"rejected,omitempty"` // wafers whose run could not be created
	Cancelled  bool             `json:"cancelled"`
	Paused     bool             `json:"paused"`
	ScheduleID string           `json:"schedule_id,omitempty"`
	CreatedAt  time.Time        `json:"created_at"`
	CreatedBy  string           `json:"created_by"`
}

// ScheduleSummary is a schedule as lists (and the schedule worker) see it.
type ScheduleSummary struct {
	ScheduleID string                `json:"schedule_id"`
	OrgID      string                `json:"org_id"`
	Name       string                `json:"name,omitempty"`
	Cron       string                `json:"cron,omitempty"`
	At         *time.Time            `json:"at,omitempty"`
	Target     events.ScheduleTarget `json:"target"`
	Paused     bool                  `json:"paused"`
	Firings    int                   `json:"firings"`
	LastFired  *time.Time            `json:"last_fired,omitempty"`
	// Skips counts slots that started nothing; LastSkipReason says why
	// the latest did not.
	Skips          int    `json:"skips"`
	LastSkipReason string `json:"last_skip_reason,omitempty"`
	Revision       uint64 `json:"revision"`
}

// Fab is the read model of fab operations: each organisation's recipe
// library, lots and schedules. Commands read their streams; lists read
// this.
type Fab struct {
	mu        sync.RWMutex
	recipes   map[string]map[string]*RecipeSummary // org → name → recipe
	lots      map[string]map[string]*LotSummary    // org → lot id → lot
	schedules map[string]*ScheduleSummary          // id → schedule
}

var _ Projection = (*Fab)(nil)

// NewFab returns an empty fab model.
func NewFab() *Fab {
	f := &Fab{}
	f.Reset()
	return f
}

// Name implements Projection.
func (f *Fab) Name() string { return "fab" }

// Reset implements Projection.
func (f *Fab) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recipes, f.lots, f.schedules = map[string]map[string]*RecipeSummary{}, map[string]map[string]*LotSummary{}, map[string]*ScheduleSummary{}
}

type fabSnapshot struct {
	Recipes   map[string]map[string]*RecipeSummary `json:"recipes"`
	Lots      map[string]map[string]*LotSummary    `json:"lots"`
	Schedules map[string]*ScheduleSummary          `json:"schedules"`
}

// Snapshot implements Projection.
func (f *Fab) Snapshot() ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return json.Marshal(fabSnapshot{Recipes: f.recipes, Lots: f.lots, Schedules: f.schedules})
}

// Restore implements Projection.
func (f *Fab) Restore(data []byte) error {
	var s fabSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore fab: %w", err)
	}
	f.Reset()
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Recipes != nil {
		f.recipes = s.Recipes
	}
	if s.Lots != nil {
		f.lots = s.Lots
	}
	if s.Schedules != nil {
		f.schedules = s.Schedules
	}
	return nil
}

// Wants implements Selective: every record of recipe, lot and schedule
// streams.
func (f *Fab) Wants(category, _ string) bool {
	switch category {
	case events.CategoryRecipe, events.CategoryLot, events.CategorySchedule:
		return true
	}
	return false
}

// Apply implements Projection.
func (f *Fab) Apply(rec events.Record) error {
	if !f.Wants(events.Category(rec.Stream), "") {
		return nil
	}
	p, err := events.Decode(rec)
	if err != nil {
		return fmt.Errorf("fab: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch e := p.(type) {
	case *events.RecipeVersionSaved:
		r := f.recipe(e.OrgID, e.Name)
		r.Kind, r.Latest, r.UpdatedAt, r.UpdatedBy = string(e.Kind), e.Version, rec.Time, rec.Metadata.UserID
	case *events.RecipeVersionApproved:
		r := f.recipe(e.OrgID, e.Name)
		r.Approved = append(r.Approved, e.Version)
		r.LatestApproved = max(r.LatestApproved, e.Version)
		r.UpdatedAt, r.UpdatedBy = rec.Time, rec.Metadata.UserID
	case *events.LotRequested:
		if f.lots[e.OrgID] == nil {
			f.lots[e.OrgID] = map[string]*LotSummary{}
		}
		f.lots[e.OrgID][e.LotID] = &LotSummary{LotID: e.LotID, Kind: string(e.Kind), Recipe: e.Recipe, Wafers: len(e.Wafers),
			ScheduleID: e.ScheduleID, CreatedAt: rec.Time, CreatedBy: rec.Metadata.UserID}
	case *events.LotWaferStarted:
		if l := f.lot(rec.Metadata.OrgID, e.LotID); l != nil {
			l.Started++
		}
	case *events.LotWaferRejected:
		if l := f.lot(rec.Metadata.OrgID, e.LotID); l != nil {
			l.Rejected++
		}
	case *events.LotCancelRequested:
		if l := f.lot(rec.Metadata.OrgID, e.LotID); l != nil {
			l.Cancelled = true
		}
	case *events.LotPaused:
		if l := f.lot(rec.Metadata.OrgID, e.LotID); l != nil {
			l.Paused = true
		}
	case *events.LotResumed:
		if l := f.lot(rec.Metadata.OrgID, e.LotID); l != nil {
			l.Paused = false
		}
	case *events.ScheduleCreated:
		f.schedules[e.ScheduleID] = &ScheduleSummary{ScheduleID: e.ScheduleID, OrgID: e.OrgID, Name: e.Name, Cron: e.Cron,
			At: e.At, Target: e.Target, Revision: rec.Revision}
	case *events.SchedulePaused:
		if s := f.schedules[e.ScheduleID]; s != nil {
			s.Paused, s.Revision = true, rec.Revision
		}
	case *events.ScheduleResumed:
		if s := f.schedules[e.ScheduleID]; s != nil {
			s.Paused, s.Revision = false, rec.Revision
		}
	case *events.ScheduleFired:
		if s := f.schedules[e.ScheduleID]; s != nil {
			slot := e.Slot
			s.Firings, s.LastFired, s.Revision = s.Firings+1, &slot, rec.Revision
		}
	case *events.ScheduleFiringSkipped:
		if s := f.schedules[e.ScheduleID]; s != nil {
			s.Skips, s.LastSkipReason, s.Revision = s.Skips+1, e.Reason, rec.Revision
		}
	}
	return nil
}

func (f *Fab) recipe(org, name string) *RecipeSummary {
	if f.recipes[org] == nil {
		f.recipes[org] = map[string]*RecipeSummary{}
	}
	r := f.recipes[org][name]
	if r == nil {
		r = &RecipeSummary{Name: name, Approved: []int{}}
		f.recipes[org][name] = r
	}
	return r
}

func (f *Fab) lot(org, id string) *LotSummary {
	return f.lots[org][id]
}

// Recipes lists an organisation's recipes by name.
func (f *Fab) Recipes(orgID string) []RecipeSummary {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := []RecipeSummary{}
	for _, r := range f.recipes[orgID] {
		c := *r
		c.Approved = append([]int{}, r.Approved...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lots lists an organisation's lots, newest first.
func (f *Fab) Lots(orgID string) []LotSummary {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := []LotSummary{}
	for _, l := range f.lots[orgID] {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].LotID < out[j].LotID
	})
	return out
}

// LotRef names a lot of an organisation.
type LotRef struct{ OrgID, LotID string }

// PausedLots lists the lots that are paused (and not cancelled).
func (f *Fab) PausedLots() []LotRef {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []LotRef
	for org, lots := range f.lots {
		for id, l := range lots {
			if l.Paused && !l.Cancelled {
				out = append(out, LotRef{OrgID: org, LotID: id})
			}
		}
	}
	return out
}

// ShortLots lists the lots that lack runs for some wafers (neither started
// nor rejected) and are not cancelled, created at or before before: lots
// whose creation was cut short, for the lot reconciler.
func (f *Fab) ShortLots(before time.Time) []LotRef {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []LotRef
	for org, lots := range f.lots {
		for id, l := range lots {
			if !l.Cancelled && l.Started+l.Rejected < l.Wafers && !l.CreatedAt.After(before) {
				out = append(out, LotRef{OrgID: org, LotID: id})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LotID < out[j].LotID })
	return out
}

// Schedules lists the schedules of an organisation ("": of all, for the
// schedule worker), by id.
func (f *Fab) Schedules(orgID string) []ScheduleSummary {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := []ScheduleSummary{}
	for _, s := range f.schedules {
		if orgID == "" || s.OrgID == orgID {
			out = append(out, *s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ScheduleID < out[j].ScheduleID })
	return out
}

// Fab commands are audited like run commands: who saved, approved,
// started, stopped or scheduled what (the entry's stream names the recipe,
// lot or schedule).
func init() {
	for typ, action := range map[string]string{
		events.TypeRecipeVersionSaved:    "recipe_saved",
		events.TypeRecipeVersionApproved: "recipe_approved",
		events.TypeLotRequested:          "lot_started",
		events.TypeLotCancelRequested:    "lot_cancel_requested",
		events.TypeLotPaused:             "lot_paused",
		events.TypeLotResumed:            "lot_resumed",
		events.TypeScheduleCreated:       "schedule_created",
		events.TypeSchedulePaused:        "schedule_paused",
		events.TypeScheduleResumed:       "schedule_resumed",
		events.TypeScheduleFired:         "schedule_fired",
		events.TypeScheduleFiringSkipped: "schedule_firing_skipped",
		events.TypeLotWaferRejected:      "lot_wafer_rejected",
		events.TypeLotRetryRequested:     "lot_retry_requested",
	} {
		auditActions[typ] = action
	}
}
