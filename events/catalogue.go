package events

import (
	"encoding/json"
	"time"

	"github.com/spectra-fab/spectra/process"
)

// Event type names (without version). Stored names carry the version:
// "RunRequested.v1".
const (
	TypeRunRequested        = "RunRequested"
	TypeRunQueued           = "RunQueued"
	TypeRunStarted          = "RunStarted"
	TypeRunPhaseChanged     = "RunPhaseChanged"
	TypeTelemetryRecorded   = "TelemetryRecorded"
	TypeSPCViolation        = "SPCViolation"
	TypeFDCAlarm            = "FDCAlarm"
	TypeRunPaused           = "RunPaused"
	TypeRunResumed          = "RunResumed"
	TypeRunCancelRequested  = "RunCancelRequested"
	TypeRunCancelled        = "RunCancelled"
	TypeRunFailed           = "RunFailed"
	TypeRunRetryScheduled   = "RunRetryScheduled"
	TypeRunRetried          = "RunRetried"
	TypeArtifactStored      = "ArtifactStored"
	TypeRunCompleted        = "RunCompleted"
	TypeRunTimeLimitWarning = "RunTimeLimitWarning"
	TypeControllerTuned     = "ControllerTuned"
	TypeAccessDenied        = "AccessDenied"
	TypeIdempotencyClaimed  = "IdempotencyKeyClaimed"

	// Credentials (streams apikey-<id> and session-<family id>).
	TypeAPIKeyIssued        = "ApiKeyIssued"
	TypeAPIKeyRevoked       = "ApiKeyRevoked"
	TypeRefreshTokenIssued  = "RefreshTokenIssued"
	TypeRefreshTokenRotated = "RefreshTokenRotated"
	TypeTokenFamilyRevoked  = "TokenFamilyRevoked"
)

// Payload is an event's data. EventType names it without version.
type Payload interface {
	EventType() string
}

// RunRequested: a user asked for a run. First event of a run stream.
type RunRequested struct {
	RunID    string          `json:"run_id"`
	JobID    string          `json:"job_id"`
	Kind     process.Kind    `json:"kind"`
	Recipe   json.RawMessage `json:"recipe"`
	ToolID   string          `json:"tool_id,omitempty"`
	Priority int             `json:"priority"`
	Seed     int64           `json:"seed"`
	Fault    *process.Fault  `json:"simulate_fault,omitempty"`
	// Disturbance is injected into the simulator (HIL testing).
	Disturbance *process.Disturbance `json:"simulate_disturbance,omitempty"`
	// IdempotencyKey is the client's key, when it sent one.
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	// Origin is the library recipe, lot or schedule the run came from.
	Origin *RunOrigin `json:"origin,omitempty"`
}

// RunQueued: the run waits for admission in a queue.
type RunQueued struct {
	JobID string `json:"job_id"`
	Queue string `json:"queue"`
}

// RunStarted: an attempt of the run began. It records every input of the
// engine besides the recipe, so the stream alone re-simulates the run.
type RunStarted struct {
	JobID   string             `json:"job_id"`
	Attempt int                `json:"attempt"`
	Seed    int64              `json:"seed"`
	R2R     map[string]float64 `json:"r2r,omitempty"`
	// R2RBasis says where the R2R adjustments came from (tool, recipe
	// class, the EWMA state read).
	R2RBasis map[string]any `json:"r2r_basis,omitempty"`
	Node     string         `json:"node,omitempty"`
	// Model is the engine's model version (run.ModelVersion: a
	// fingerprint of its parameters and code, then the code version), so
	// verification can tell when its engine differs. Empty in older logs.
	Model string `json:"model,omitempty"`
	// Policy is the retry and time-limit policy the run runs under; nil
	// in older logs (docs/provenance.md: the documented defaults).
	Policy *RunPolicy `json:"policy,omitempty"`
}

// RunPhaseChanged: the run reached a named step.
type RunPhaseChanged struct {
	JobID    string  `json:"job_id"`
	Name     string  `json:"name"`
	Progress float64 `json:"progress"`
	Step     int     `json:"step"` // engine steps done so far
}

// TelemetryRecorded: one second of process time, ten samples, columnar:
// field → values. FirstStep is the engine step of the first sample.
type TelemetryRecorded struct {
	JobID       string               `json:"job_id"`
	Attempt     int                  `json:"attempt"`
	FirstStep   int                  `json:"first_step"`
	Samples     map[string][]float64 `json:"samples"`
	Progress    float64              `json:"progress"`
	CurrentStep string               `json:"current_step"`
}

// SPCViolation: a control-chart rule broke during the run.
type SPCViolation struct {
	JobID string        `json:"job_id"`
	Step  int           `json:"step"`
	Alarm process.Alarm `json:"alarm"`
}

// FDCAlarm: fault detection raised an alarm during the run.
type FDCAlarm struct {
	JobID string        `json:"job_id"`
	Step  int           `json:"step"`
	Alarm process.Alarm `json:"alarm"`
}

// RunPaused: process time stopped at Step.
type RunPaused struct {
	JobID string `json:"job_id"`
	Step  int    `json:"step"`
}

// RunResumed: process time goes on from Step.
type RunResumed struct {
	JobID string `json:"job_id"`
	Step  int    `json:"step"`
}

// RunCancelRequested: somebody asked to stop the run.
type RunCancelRequested struct {
	JobID  string `json:"job_id"`
	Reason string `json:"reason,omitempty"`
}

// RunCancelled: the run stopped early, leaving the tool in SafeState.
type RunCancelled struct {
	JobID     string `json:"job_id"`
	Step      int    `json:"step"`
	Reason    string `json:"reason"`
	SafeState string `json:"safe_state"`
}

// RunFailed: the run ended with an error.
type RunFailed struct {
	JobID     string `json:"job_id"`
	Step      int    `json:"step"`
	Error     string `json:"error_message"`
	Transient bool   `json:"transient"`
	SafeState string `json:"safe_state,omitempty"`
}

// RunRetryScheduled: after a transient fault the run will be tried again
// after Delay (process-clock scaled).
type RunRetryScheduled struct {
	JobID      string  `json:"job_id"`
	Attempt    int     `json:"attempt"` // the attempt that will run next
	DelayS     float64 `json:"delay_s"`
	RetryCount int     `json:"retry_count"`
	Reason     string  `json:"reason"`
}

// RunRetried: a failed or cancelled job was retried by hand as a new job
// on the same run stream.
type RunRetried struct {
	JobID     string `json:"job_id"` // the new job
	FromJobID string `json:"from_job_id"`
	Seed      int64  `json:"seed"`
	// Fault is the fault injected into the new job. A manual retry stands
	// for "after the tool was repaired": the first job's injected fault is
	// not carried over unless the retry asks for one.
	Fault *process.Fault `json:"simulate_fault,omitempty"`
}

// ArtifactStored: a file of the run was stored.
type ArtifactStored struct {
	JobID       string `json:"job_id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
	URI         string `json:"uri"`
}

// RunCompleted: the run finished successfully with Result.
type RunCompleted struct {
	JobID     string  `json:"job_id"`
	Step      int     `json:"step"`
	DurationS float64 `json:"process_time_s"`
	// Result is the engine's process.Result as a JSON object (ion.Result,
	// rtp.Result by the run's kind); run.Outcome decodes it.
	Result json.RawMessage `json:"result"`
	// R2R is the engine's process.Observations as a JSON object of numbers.
	R2R json.RawMessage `json:"r2r_observations,omitempty"`
}

// RunTimeLimitWarning: the run passed its soft time limit.
type RunTimeLimitWarning struct {
	JobID  string `json:"job_id"`
	Limit  string `json:"limit"` // "soft" or "hard"
	Step   int    `json:"step"`
	Reason string `json:"reason"`
}

// ControllerTuned: a controller was auto-tuned on request.
type ControllerTuned struct {
	TuningID           string          `json:"tuning_id"`
	ControllerType     string          `json:"controller_type"`
	OptimizationTarget string          `json:"optimization_target"`
	Recipe             json.RawMessage `json:"recipe,omitempty"`
	Response           json.RawMessage `json:"response"`
}

// AccessDenied: a request was refused (401, 403, or 404 for another
// organisation's resource).
//
// One event stands for Count attempts of one principal from one address in
// one window (0 or 1: a single attempt). A probe of another organisation's
// resource is recorded in that organisation's audit, FromOrg naming the
// prober's organisation.
type AccessDenied struct {
	Status   int    `json:"status"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	Reason   string `json:"reason"`
	Resource string `json:"resource,omitempty"`
	Count    int    `json:"count,omitempty"`
	Address  string `json:"address,omitempty"`
	FromOrg  string `json:"from_org,omitempty"`
}

// IdempotencyKeyClaimed: an idempotency key of an organisation now names a
// run. First and only event of stream idem-<hash of org and key> (the API
// scopes keys per principal by prefixing the user). Fingerprint binds the
// key to the request that claimed it (kind and body): a reuse for another
// request is refused. Claims recorded before it have none.
type IdempotencyKeyClaimed struct {
	RunID       string `json:"run_id"`
	JobID       string `json:"job_id"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// APIKeyIssued: an API key was issued for a service account of the
// organisation in the metadata. First event of stream apikey-<key id>. The
// key itself is never stored: Hash is the hex SHA-256 of the whole key.
type APIKeyIssued struct {
	KeyID     string     `json:"key_id"`
	OrgID     string     `json:"org_id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Hash      string     `json:"hash"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// APIKeyRevoked: an API key no longer authenticates anything, nor do the
// token families it started.
type APIKeyRevoked struct {
	KeyID  string `json:"key_id"`
	Reason string `json:"reason,omitempty"`
}

// RefreshTokenIssued: an API key was exchanged for an access token and a
// refresh token, starting a token family. First event of stream
// session-<family id>. Hash is the hex SHA-256 of the refresh token.
type RefreshTokenIssued struct {
	FamilyID      string    `json:"family_id"`
	TokenID       string    `json:"token_id"`
	Hash          string    `json:"hash"`
	KeyID         string    `json:"key_id"`
	Subject       string    `json:"sub"`
	OrgID         string    `json:"org_id"`
	Role          string    `json:"role"`
	AccessTokenID string    `json:"access_token_id"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// RefreshTokenRotated: a family's current refresh token was spent for a
// new access token and a new refresh token.
type RefreshTokenRotated struct {
	FamilyID      string    `json:"family_id"`
	FromTokenID   string    `json:"from_token_id"`
	TokenID       string    `json:"token_id"`
	Hash          string    `json:"hash"`
	AccessTokenID string    `json:"access_token_id"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// TokenFamilyRevoked: every refresh and access token of the family is
// refused from now on (a spent refresh token was presented again, or the
// family was ended on purpose).
type TokenFamilyRevoked struct {
	FamilyID string `json:"family_id"`
	Reason   string `json:"reason"`
	// TokenID is the refresh token whose reuse revoked the family, if any.
	TokenID string `json:"token_id,omitempty"`
}

func (IdempotencyKeyClaimed) EventType() string { return TypeIdempotencyClaimed }
func (APIKeyIssued) EventType() string          { return TypeAPIKeyIssued }
func (APIKeyRevoked) EventType() string         { return TypeAPIKeyRevoked }
func (RefreshTokenIssued) EventType() string    { return TypeRefreshTokenIssued }
func (RefreshTokenRotated) EventType() string   { return TypeRefreshTokenRotated }
func (TokenFamilyRevoked) EventType() string    { return TypeTokenFamilyRevoked }
func (RunRequested) EventType() string          { return TypeRunRequested }
func (RunQueued) EventType() string             { return TypeRunQueued }
func (RunStarted) EventType() string            { return TypeRunStarted }
func (RunPhaseChanged) EventType() string       { return TypeRunPhaseChanged }
func (TelemetryRecorded) EventType() string     { return TypeTelemetryRecorded }
func (SPCViolation) EventType() string          { return TypeSPCViolation }
func (FDCAlarm) EventType() string              { return TypeFDCAlarm }
func (RunPaused) EventType() string             { return TypeRunPaused }
func (RunResumed) EventType() string            { return TypeRunResumed }
func (RunCancelRequested) EventType() string    { return TypeRunCancelRequested }
func (RunCancelled) EventType() string          { return TypeRunCancelled }
func (RunFailed) EventType() string             { return TypeRunFailed }
func (RunRetryScheduled) EventType() string     { return TypeRunRetryScheduled }
func (RunRetried) EventType() string            { return TypeRunRetried }
func (ArtifactStored) EventType() string        { return TypeArtifactStored }
func (RunCompleted) EventType() string          { return TypeRunCompleted }
func (RunTimeLimitWarning) EventType() string   { return TypeRunTimeLimitWarning }
func (ControllerTuned) EventType() string       { return TypeControllerTuned }
func (AccessDenied) EventType() string          { return TypeAccessDenied }

// Chart-level SPC facts: the SPC monitor (projections.SPCMonitor) is the
// only writer of an SPC stream, spc-<org>-<kind>-<tool>, one per tool's
// run-to-run charts, appending with the expected revision.
const (
	TypeSPCLimitsEstablished = "SPCLimitsEstablished"
	TypeSPCRuleViolated      = "SPCRuleViolated"
)

// SPCChartRef names a run-to-run control chart: one parameter of one
// tool's runs of one kind in one organisation.
type SPCChartRef struct {
	OrgID     string       `json:"org_id"`
	Kind      process.Kind `json:"kind"`
	ToolID    string       `json:"tool_id"`
	Parameter string       `json:"parameter"`
}

// SPCLimitsEstablished: a run-to-run chart's centre line and control
// limits were fixed from its baseline runs (an individuals chart: centre
// the baseline mean, σ̂ = MR̄/1.128, limits ±3σ̂); later points are checked
// against them with Rules.
type SPCLimitsEstablished struct {
	Chart        SPCChartRef `json:"chart"`
	Center       float64     `json:"center"`
	UCL          float64     `json:"ucl"`
	LCL          float64     `json:"lcl"`
	Sigma        float64     `json:"sigma"`
	BaselineJobs []string    `json:"baseline_jobs"` // the jobs whose points made the baseline, in chart order
	Rules        []string    `json:"rules"`
	Method       string      `json:"method"`
}

// SPCRuleViolated: a point of a run-to-run chart broke a rule. Point is
// the point's index on the chart, from 0.
type SPCRuleViolated struct {
	Chart   SPCChartRef `json:"chart"`
	RunID   string      `json:"run_id"`
	JobID   string      `json:"job_id"`
	Point   int         `json:"point"`
	Value   float64     `json:"value"`
	Rule    string      `json:"rule"`
	Message string      `json:"message"`
}

func (SPCLimitsEstablished) EventType() string { return TypeSPCLimitsEstablished }
func (SPCRuleViolated) EventType() string      { return TypeSPCRuleViolated }
