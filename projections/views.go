package projections

import (
	"encoding/json"
	"time"

	"github.com/spectra-fab/spectra/run"
)

// Job statuses (the seed's, plus paused): the names of run.State.
const (
	StatusQueued    = string(run.Queued)
	StatusRunning   = string(run.Running)
	StatusPaused    = string(run.Paused)
	StatusCompleted = string(run.Completed)
	StatusFailed    = string(run.Failed)
	StatusCancelled = string(run.Cancelled)
	StatusRetrying  = string(run.Retrying)
)

// Terminal reports whether a job status is final.
func Terminal(status string) bool { return run.State(status).Terminal() }

// SEMI E40 process-job states (PRSTATE), as package run maps job states
// onto them; docs/lifecycle.md has the whole mapping.
const (
	E40Queued          = run.E40Queued
	E40SettingUp       = run.E40SettingUp
	E40Processing      = run.E40Processing
	E40ProcessComplete = run.E40ProcessComplete
	E40Paused          = run.E40Paused
	E40Aborted         = run.E40Aborted
	E40Removed         = run.E40Removed
)

// Job types.
const (
	JobTypeIon = "ion_implant"
	JobTypeRTP = "rtp"
)

// Artifact is a stored file of a run.
type Artifact struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
	URI         string `json:"uri"`
}

// Job is the job-status read model of one job (a run has one job, plus one
// per manual retry).
type Job struct {
	ID           string          `json:"id"`
	RunID        string          `json:"run_id"`
	OrgID        string          `json:"org_id"`
	JobType      string          `json:"job_type"`
	UserID       string          `json:"user_id"`
	Status       string          `json:"status"`
	E40State     string          `json:"e40_state"`
	Progress     float64         `json:"progress"`
	CurrentStep  string          `json:"current_step"`
	RecipeData   json.RawMessage `json:"recipe_data"`
	CreatedAt    time.Time       `json:"created_at"`
	StartedAt    *time.Time      `json:"started_at"`
	CompletedAt  *time.Time      `json:"completed_at"`
	ErrorMessage string          `json:"error_message"`
	RetryCount   int             `json:"retry_count"`
	LogsURI      string          `json:"logs_uri"`
	Artifacts    []Artifact      `json:"artifacts"`
	Metadata     map[string]any  `json:"metadata"`
}

// Run is the read model of one run: its current job's state plus its
// results.
type Run struct {
	RunID       string          `json:"run_id"`
	JobID       string          `json:"job_id"`
	OrgID       string          `json:"org_id"`
	Kind        string          `json:"kind"` // "ion" or "rtp"
	UserID      string          `json:"user_id"`
	Status      string          `json:"status"`
	E40State    string          `json:"e40_state"`
	Progress    float64         `json:"progress"`
	CurrentStep string          `json:"current_step"`
	Recipe      json.RawMessage `json:"recipe"`
	ToolID      string          `json:"tool_id,omitempty"`
	Priority    int             `json:"priority"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at"`
	CompletedAt *time.Time      `json:"completed_at"`
	// DurationSeconds is wall time from start to completion.
	DurationSeconds *float64 `json:"duration_seconds"`
	// ProcessTimeS is the process time the run has covered.
	ProcessTimeS   float64         `json:"process_time_s"`
	ErrorMessage   string          `json:"error_message,omitempty"`
	RetryCount     int             `json:"retry_count"`
	SPCAlertsCount int             `json:"spc_alerts_count"`
	FDCAlarmsCount int             `json:"fdc_alarms_count"`
	Result         json.RawMessage `json:"-"` // a JSON object, flattened into the response by the API
	LogsURI        string          `json:"logs_uri"`
	Artifacts      []Artifact      `json:"artifacts"`
	Revision       uint64          `json:"revision"` // last applied revision of the run stream
	Position       uint64          `json:"position"` // global position of that event
	// Seq is the run's place in the organisation-wide creation order
	// (1 the first), set by Runs: a cursor that new runs never move.
	Seq int `json:"-"`
}

// RunFilter selects runs of one organisation.
type RunFilter struct {
	OrgID  string
	Kind   string // "ion", "rtp" or "" for both
	Status string
	ToolID string // "" for every tool
	LotID  string // the recipe's lot_id; "" for every lot
	// Before keeps only runs created before the run whose Seq it is (0:
	// from the newest): paging by it never repeats or skips a run however
	// many are created meanwhile.
	Before int
	Limit  int
	Offset int
}

// JobFilter selects jobs of one organisation.
type JobFilter struct {
	OrgID   string
	JobType string
	Status  string
	Limit   int
	Offset  int
}
