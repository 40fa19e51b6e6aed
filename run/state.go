package run

// State is the lifecycle state of a run's current job. Its value is the
// job status the API shows (the seed's statuses, plus paused).
type State string

// States of a run's job.
const (
	// None: the stream holds no RunRequested (yet): the run does not exist.
	None      State = ""
	Queued    State = "queued"
	Running   State = "running"
	Paused    State = "paused"
	Retrying  State = "retrying"
	Completed State = "completed"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

// States lists every state a job can be in, for tables and tests.
var States = []State{Queued, Running, Paused, Retrying, Completed, Failed, Cancelled}

// transitions are the allowed moves between states. A manual retry starts
// a new job: Failed or Cancelled → Queued.
var transitions = map[State][]State{
	None:      {Queued},
	Queued:    {Running, Cancelled},
	Running:   {Paused, Retrying, Completed, Failed, Cancelled},
	Paused:    {Running, Cancelled, Failed},
	Retrying:  {Running, Cancelled},
	Failed:    {Queued},
	Cancelled: {Queued},
	Completed: {},
}

// CanBecome reports whether a job in s may move to next.
func (s State) CanBecome(next State) bool {
	for _, t := range transitions[s] {
		if t == next {
			return true
		}
	}
	return false
}

// Terminal reports whether the job has ended: completed, failed or
// cancelled. Nothing but a manual retry (a new job) follows.
func (s State) Terminal() bool {
	return s == Completed || s == Failed || s == Cancelled
}

// String returns the status name.
func (s State) String() string { return string(s) }

// SEMI E40 process-job states (PRSTATE) as Spectra maps its job states
// onto them; docs/lifecycle.md has the whole mapping.
const (
	E40Queued          = "QUEUED"
	E40SettingUp       = "SETTING UP"
	E40Processing      = "PROCESSING"
	E40ProcessComplete = "PROCESS COMPLETE"
	E40Paused          = "PAUSED"
	E40Aborted         = "ABORTED"
	E40Removed         = "REMOVED" // cancelled while still queued
)
