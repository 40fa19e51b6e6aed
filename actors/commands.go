package actors

import (
	"encoding/json"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// CreateRun asks for a new run. The recipe is validated before anything is
// appended: an invalid one returns a *process.ValidationError.
type CreateRun struct {
	Kind     process.Kind
	Recipe   json.RawMessage // the recipe as the client sent it (ion or rtp fields)
	ToolID   string
	Priority int
	// IdempotencyKey, when set, makes a repeated request from the same
	// organisation return the first run and append nothing.
	IdempotencyKey string
	// RunID, when set, is the run id IdempotencyKey names (KeyRunID):
	// recording the run claims the key, in one append, where another key
	// is claimed in its own stream first.
	RunID string
	// KeyRepeated: the client sent the key RunID is named by (a retry or a
	// repetition, where a key the server chose for this request is new).
	// The run the key names under another kind is then looked for first,
	// so that the key reused for another kind is refused, not a new run.
	KeyRepeated bool
	// Fault is an injected fault for hardware-in-the-loop testing; refused
	// unless fault injection is allowed.
	Fault *process.Fault
	// Disturbance is injected into the simulator (HIL testing); refused
	// like Fault unless fault injection is allowed.
	Disturbance *process.Disturbance
	// Origin (library recipe, lot, schedule) is recorded in RunRequested.
	Origin *events.RunOrigin
	Meta   events.Metadata
}

// RunCommand is a command on an existing run or job: cancel, pause, resume,
// retry.
type RunCommand struct {
	RunID  string
	JobID  string // optional: the job it names, checked against the run's current job
	Reason string
	Meta   events.Metadata
}

// Accepted is the answer to an accepted command.
type Accepted struct {
	RunID     string    `json:"run_id"`
	JobID     string    `json:"job_id"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// Position is the global position of the last event the command
	// appended (or of the existing run's first event for a repeated
	// idempotent create).
	Position uint64 `json:"position"`
	// Revision is the run stream's revision after the command.
	Revision uint64 `json:"revision"`
	// Existing: a repeated idempotent create, answered with the run the
	// first request recorded.
	Existing bool `json:"existing,omitempty"`
}
