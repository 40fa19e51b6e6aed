package fab

import (
	"fmt"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// MaxWafers is the most wafers a lot holds (a FOUP's 25 slots).
const MaxWafers = 25

// Member is one wafer of a lot and its run.
type Member struct {
	WaferID string `json:"wafer_id"`
	Slot    int    `json:"slot"`
	RunID   string `json:"run_id"`
	JobID   string `json:"job_id"`
}

// Lot is a lot folded from its stream: what was asked for, the runs
// created for its wafers, and the lot-level commands given.
type Lot struct {
	LotID      string           `json:"lot_id"`
	OrgID      string           `json:"org_id"`
	Kind       process.Kind     `json:"kind"`
	Recipe     events.RecipeRef `json:"recipe"`
	Wafers     []string         `json:"wafers"`
	ToolID     string           `json:"tool_id,omitempty"`
	Priority   int              `json:"priority"`
	Production bool             `json:"production"`
	ScheduleID string           `json:"schedule_id,omitempty"`
	CreatedBy  string           `json:"created_by"`
	CreatedAt  time.Time        `json:"created_at"`
	Members    []Member         `json:"members"`
	// Rejected: wafers whose run could not be created, for good (wafer id
	// → why). They count as failed.
	Rejected  map[string]string `json:"rejected,omitempty"`
	Cancelled bool              `json:"cancelled"`
	Paused    bool              `json:"paused"`
	// Retries counts the lot-level retries (LotRetryRequested).
	Retries   int    `json:"retries"`
	Revision  uint64 `json:"revision"`
	exists    bool
	pausedBy  events.Metadata // who paused the lot: wafers that start while it is paused are paused as them
	firedSlot *time.Time
	faults    map[string]*process.Fault
	retried   map[string]int  // wafer → lot-level retries of it
	creator   events.Metadata // who asked for the lot: its wafers' runs are created as them
	requestID string          // the LotRequested event's id: what its runs are caused by
}

// Missing lists the wafers that have neither a run nor a rejection: what
// a lot whose creation was cut short (a crash) still has to create.
func (l *Lot) Missing() []string {
	var out []string
	for _, w := range l.Wafers {
		if _, rejected := l.Rejected[w]; l.member(w) == nil && !rejected {
			out = append(out, w)
		}
	}
	return out
}

// Apply folds one event of the lot's stream.
func (l *Lot) Apply(rec events.Record) error {
	p, err := events.Decode(rec)
	if err != nil {
		return err
	}
	switch e := p.(type) {
	case *events.LotRequested:
		*l = Lot{LotID: e.LotID, OrgID: e.OrgID, Kind: e.Kind, Recipe: e.Recipe, Wafers: e.Wafers, ToolID: e.ToolID,
			Priority: e.Priority, Production: e.Production, ScheduleID: e.ScheduleID,
			CreatedBy: rec.Metadata.UserID, CreatedAt: rec.Time, exists: true,
			firedSlot: e.FiredSlot, faults: e.Faults, creator: rec.Metadata, requestID: rec.ID}
	case *events.LotWaferStarted:
		if l.member(e.WaferID) == nil {
			l.Members = append(l.Members, Member{WaferID: e.WaferID, Slot: e.Slot, RunID: e.RunID, JobID: e.JobID})
		}
	case *events.LotWaferRejected:
		if l.member(e.WaferID) == nil {
			if l.Rejected == nil {
				l.Rejected = map[string]string{}
			}
			l.Rejected[e.WaferID] = e.Reason
		}
	case *events.LotRetryRequested:
		l.Retries++
		if l.retried == nil {
			l.retried = map[string]int{}
		}
		for _, w := range e.Wafers {
			l.retried[w]++
		}
	case *events.LotCancelRequested:
		l.Cancelled = true
	case *events.LotPaused:
		l.Paused, l.pausedBy = true, rec.Metadata
	case *events.LotResumed:
		l.Paused = false
	}
	l.Revision = rec.Revision
	return nil
}

func (l *Lot) member(wafer string) *Member {
	for i := range l.Members {
		if l.Members[i].WaferID == wafer {
			return &l.Members[i]
		}
	}
	return nil
}

// Lot commands.
const (
	LotCancel = "cancel"
	LotPause  = "pause"
	LotResume = "resume"
)

// WaferRetries is how often the lot retried a wafer.
func (l *Lot) WaferRetries(wafer string) int { return l.retried[wafer] }

// Retry decides a lot-level retry of wafers (each must have a run).
func (l *Lot) Retry(wafers []string, reason string) (*events.LotRetryRequested, error) {
	if !l.exists {
		return nil, ErrNotFound
	}
	if l.Cancelled {
		return nil, refuse(fmt.Sprintf("lot %s is cancelled", l.LotID))
	}
	if len(wafers) == 0 {
		return nil, refuse(fmt.Sprintf("lot %s has no failed wafer to retry", l.LotID))
	}
	var ve process.ValidationError
	for i, w := range wafers {
		if l.member(w) == nil {
			ve.Add(fmt.Sprintf("wafers[%d]", i), w, "a wafer of the lot with a run", "no run of that wafer in the lot")
		}
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	return &events.LotRetryRequested{LotID: l.LotID, Wafers: wafers, Reason: reason}, nil
}

// Command decides a lot-level command.
func (l *Lot) Command(verb, reason string) (events.Payload, error) {
	if !l.exists {
		return nil, ErrNotFound
	}
	if l.Cancelled {
		return nil, refuse(fmt.Sprintf("lot %s is cancelled", l.LotID))
	}
	switch verb {
	case LotCancel:
		return &events.LotCancelRequested{LotID: l.LotID, Reason: reason}, nil
	case LotPause:
		if l.Paused {
			return nil, refuse(fmt.Sprintf("lot %s is already paused", l.LotID))
		}
		return &events.LotPaused{LotID: l.LotID}, nil
	case LotResume:
		if !l.Paused {
			return nil, refuse(fmt.Sprintf("lot %s is not paused", l.LotID))
		}
		return &events.LotResumed{LotID: l.LotID}, nil
	}
	return nil, fmt.Errorf("lot command %q: unknown verb", verb)
}
