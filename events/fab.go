package events

import (
	"encoding/json"
	"time"

	"github.com/spectra-fab/spectra/process"
)

// Fab operations: the recipe library, lots and schedules. Each has its
// own stream, written by whoever holds its expected revision:
//
//	recipe-<org>-<name>   RecipeVersionSaved, RecipeVersionApproved
//	lot-<lot id>          LotRequested, LotWaferStarted, LotWaferRejected, LotCancelRequested, LotPaused, LotResumed,
//	                      LotRetryRequested
//	schedule-<id>         ScheduleCreated, SchedulePaused, ScheduleResumed, ScheduleFired, ScheduleFiringSkipped
const (
	CategoryRecipe   = "recipe"
	CategoryLot      = "lot"
	CategorySchedule = "schedule"

	TypeRecipeVersionSaved    = "RecipeVersionSaved"
	TypeRecipeVersionApproved = "RecipeVersionApproved"
	TypeLotRequested          = "LotRequested"
	TypeLotWaferStarted       = "LotWaferStarted"
	TypeLotCancelRequested    = "LotCancelRequested"
	TypeLotPaused             = "LotPaused"
	TypeLotResumed            = "LotResumed"
	TypeScheduleCreated       = "ScheduleCreated"
	TypeSchedulePaused        = "SchedulePaused"
	TypeScheduleResumed       = "ScheduleResumed"
	TypeScheduleFired         = "ScheduleFired"
	TypeLotWaferRejected      = "LotWaferRejected"
	TypeScheduleFiringSkipped = "ScheduleFiringSkipped"
	TypeLotRetryRequested     = "LotRetryRequested"
)

// RecipeStream is the stream of an organisation's named recipe. Recipe
// names hold no '-', so the name is what follows the last '-'.
func RecipeStream(orgID, name string) string { return CategoryRecipe + "-" + orgID + "-" + name }

// LotStream is the stream of a lot.
func LotStream(lotID string) string { return CategoryLot + "-" + lotID }

// ScheduleStream is the stream of a schedule.
func ScheduleStream(id string) string { return CategorySchedule + "-" + id }

// RecipeRef names one version of a library recipe.
type RecipeRef struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

// RunOrigin says where a run came from when a person did not type its
// recipe: the library recipe it was resolved from, the lot it belongs to,
// the schedule firing that started it. It rides on RunRequested.
type RunOrigin struct {
	Recipe *RecipeRef `json:"recipe,omitempty"`
	// Production: the run needed an approved recipe version.
	Production bool   `json:"production,omitempty"`
	LotID      string `json:"lot_id,omitempty"`
	WaferID    string `json:"wafer_id,omitempty"`
	// Slot is the wafer's place in its lot, from 1.
	Slot       int        `json:"slot,omitempty"`
	ScheduleID string     `json:"schedule_id,omitempty"`
	FiredSlot  *time.Time `json:"fired_slot,omitempty"`
}

// RecipeVersionSaved: an engineer saved a new version of a library
// recipe. Version 1 creates the recipe; its kind never changes.
type RecipeVersionSaved struct {
	OrgID   string          `json:"org_id"`
	Name    string          `json:"name"`
	Version int             `json:"version"`
	Kind    process.Kind    `json:"kind"`
	Recipe  json.RawMessage `json:"recipe"`
	Comment string          `json:"comment,omitempty"`
}

// RecipeVersionApproved: an admin released a version for production runs.
type RecipeVersionApproved struct {
	OrgID   string `json:"org_id"`
	Name    string `json:"name"`
	Version int    `json:"version"`
	Comment string `json:"comment,omitempty"`
}

// LotRequested: somebody started a lot, one run per wafer, from a recipe
// version. First event of stream lot-<lot id>, appended before any run is
// created: it is the lot's whole intent, so whoever finds a lot short of
// runs (the node's lot reconciler after a crash) can create the rest.
// Each wafer's run is recorded by a LotWaferStarted, and carries the lot
// in its RunRequested (RunOrigin.LotID).
type LotRequested struct {
	LotID      string       `json:"lot_id"`
	OrgID      string       `json:"org_id"`
	Kind       process.Kind `json:"kind"`
	Recipe     RecipeRef    `json:"recipe"`
	Wafers     []string     `json:"wafers"`
	ToolID     string       `json:"tool_id,omitempty"`
	Priority   int          `json:"priority"`
	Production bool         `json:"production"`
	ScheduleID string       `json:"schedule_id,omitempty"`
	FiredSlot  *time.Time   `json:"fired_slot,omitempty"`
	// Faults: faults injected into some wafers' runs (HIL testing).
	Faults map[string]*process.Fault `json:"faults,omitempty"`
}

// LotWaferStarted: the run of one wafer of the lot was created.
type LotWaferStarted struct {
	LotID   string `json:"lot_id"`
	WaferID string `json:"wafer_id"`
	Slot    int    `json:"slot"`
	RunID   string `json:"run_id"`
	JobID   string `json:"job_id"`
}

// LotWaferRejected: one wafer's run cannot be created, and trying again
// will not change that (the server no longer allows the fault the lot
// injects, the recipe no longer validates). The wafer counts as finished,
// failed, so the lot can finish.
type LotWaferRejected struct {
	LotID   string `json:"lot_id"`
	WaferID string `json:"wafer_id"`
	Slot    int    `json:"slot"`
	Reason  string `json:"reason"`
}

// LotCancelRequested: somebody asked to stop every unfinished wafer.
type LotCancelRequested struct {
	LotID  string `json:"lot_id"`
	Reason string `json:"reason,omitempty"`
}

// LotPaused: somebody paused the lot's running wafers.
type LotPaused struct {
	LotID string `json:"lot_id"`
}

// LotResumed: somebody resumed the lot's paused wafers.
type LotResumed struct {
	LotID string `json:"lot_id"`
}

// ScheduleTarget is what a schedule starts at each firing: one run, or a
// lot when Wafers is set, of a library recipe. Version 0 means the latest
// approved version at the time of firing.
type ScheduleTarget struct {
	Kind     process.Kind `json:"kind"`
	Recipe   RecipeRef    `json:"recipe"`
	Wafers   []string     `json:"wafers,omitempty"`
	ToolID   string       `json:"tool_id,omitempty"`
	Priority int          `json:"priority,omitempty"`
}

// ScheduleCreated: somebody scheduled a recipe or lot at a time (At) or on
// a cron expression (Cron, five fields). Times are process times: process
// time runs TimeScale times faster than wall time from Epoch (a wall time),
// so at time scale 60 "every minute" fires every wall second.
type ScheduleCreated struct {
	ScheduleID string         `json:"schedule_id"`
	OrgID      string         `json:"org_id"`
	Name       string         `json:"name,omitempty"`
	At         *time.Time     `json:"at,omitempty"`
	Cron       string         `json:"cron,omitempty"`
	Target     ScheduleTarget `json:"target"`
	Epoch      time.Time      `json:"epoch"`
	TimeScale  float64        `json:"time_scale"`
}

// SchedulePaused: no slot fires until ScheduleResumed; slots that pass
// meanwhile are skipped.
type SchedulePaused struct {
	ScheduleID string `json:"schedule_id"`
}

// ScheduleResumed: the schedule fires again from the next slot.
type ScheduleResumed struct {
	ScheduleID string `json:"schedule_id"`
}

// ScheduleFired: the schedule's slot (a process time) fired. Appended with
// the schedule stream's expected revision, it is the claim that makes a
// slot fire at most once across restarts and nodes; its event id derives
// from the slot too. The runs it starts carry the slot in RunOrigin.
type ScheduleFired struct {
	ScheduleID string    `json:"schedule_id"`
	Slot       time.Time `json:"slot"`
	LotID      string    `json:"lot_id,omitempty"`
	// Skipped counts slots that passed unfired before this one (the
	// server was down longer than the catch-up window, or paused).
	Skipped int `json:"skipped,omitempty"`
}

// ScheduleFiringSkipped: the schedule's slot came but started nothing,
// for Reason (no approved version of the recipe, a recipe of another
// kind). Appended instead of ScheduleFired, with the same expected
// revision: each slot is fired or skipped, once.
type ScheduleFiringSkipped struct {
	ScheduleID string    `json:"schedule_id"`
	Slot       time.Time `json:"slot"`
	Reason     string    `json:"reason"`
	// Skipped counts slots that passed unfired before this one, as in
	// ScheduleFired.
	Skipped int `json:"skipped,omitempty"`
}

// LotRetryRequested: somebody asked to run some wafers of the lot again
// (their failed or cancelled runs, each as a new job of the same run).
type LotRetryRequested struct {
	LotID  string   `json:"lot_id"`
	Wafers []string `json:"wafers"`
	Reason string   `json:"reason,omitempty"`
}

func (RecipeVersionSaved) EventType() string    { return TypeRecipeVersionSaved }
func (RecipeVersionApproved) EventType() string { return TypeRecipeVersionApproved }
func (LotRequested) EventType() string          { return TypeLotRequested }
func (LotWaferStarted) EventType() string       { return TypeLotWaferStarted }
func (LotCancelRequested) EventType() string    { return TypeLotCancelRequested }
func (LotPaused) EventType() string             { return TypeLotPaused }
func (LotResumed) EventType() string            { return TypeLotResumed }
func (ScheduleCreated) EventType() string       { return TypeScheduleCreated }
func (SchedulePaused) EventType() string        { return TypeSchedulePaused }
func (ScheduleResumed) EventType() string       { return TypeScheduleResumed }
func (ScheduleFired) EventType() string         { return TypeScheduleFired }
func (LotWaferRejected) EventType() string      { return TypeLotWaferRejected }
func (ScheduleFiringSkipped) EventType() string { return TypeScheduleFiringSkipped }
func (LotRetryRequested) EventType() string     { return TypeLotRetryRequested }

func init() {
	register[RecipeVersionSaved](1)
	register[RecipeVersionApproved](1)
	register[LotRequested](1)
	register[LotWaferStarted](1)
	register[LotCancelRequested](1)
	register[LotPaused](1)
	register[LotResumed](1)
	register[ScheduleCreated](1)
	register[SchedulePaused](1)
	register[ScheduleResumed](1)
	register[ScheduleFired](1)
	register[LotWaferRejected](1)
	register[ScheduleFiringSkipped](1)
	register[LotRetryRequested](1)
}
