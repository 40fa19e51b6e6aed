package fab

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/spectra-fab/spectra/events"
)

// MaxCatchUp is how many missed slots a schedule fires after the server
// was down (or behind); older missed slots are skipped, and counted in the
// next ScheduleFired.
const MaxCatchUp = 10

// parseCron parses a five-field cron expression (or a descriptor such as
// @hourly or @every 5m), in UTC.
func parseCron(spec string) (cron.Schedule, error) {
	return cron.ParseStandard(spec)
}

// Schedule is a schedule folded from its stream.
type Schedule struct {
	ScheduleID string                `json:"schedule_id"`
	OrgID      string                `json:"org_id"`
	Name       string                `json:"name,omitempty"`
	At         *time.Time            `json:"at,omitempty"`
	Cron       string                `json:"cron,omitempty"`
	Target     events.ScheduleTarget `json:"target"`
	Epoch      time.Time             `json:"epoch"`
	TimeScale  float64               `json:"time_scale"`
	Paused     bool                  `json:"paused"`
	// After: slots at or before it are done with (fired, or passed while
	// paused).
	After     time.Time  `json:"after"`
	LastFired *time.Time `json:"last_fired,omitempty"`
	LastLotID string     `json:"last_lot_id,omitempty"`
	Firings   int        `json:"firings"`
	// Skips counts the slots that came but started nothing (no approved
	// version of the recipe); LastSkip is the latest, with its reason.
	Skips     int    `json:"skips"`
	LastSkip  *Skip  `json:"last_skip,omitempty"`
	CreatedBy string `json:"created_by"`
	Revision  uint64 `json:"revision"`

	creator events.Metadata
	lastID  string // event id of the last firing: causation of what it started
	spec    cron.Schedule
	exists  bool
}

// Skip is a slot that started nothing, and why.
type Skip struct {
	Slot   time.Time `json:"slot"`
	Reason string    `json:"reason"`
}

// ProcessTime is the schedule's process time at a wall time.
func (s *Schedule) ProcessTime(wall time.Time) time.Time {
	scale := s.TimeScale
	if scale <= 0 {
		scale = 1
	}
	return s.Epoch.Add(time.Duration(float64(wall.Sub(s.Epoch)) * scale)).UTC()
}

// Apply folds one event of the schedule's stream.
func (s *Schedule) Apply(rec events.Record) error {
	p, err := events.Decode(rec)
	if err != nil {
		return err
	}
	switch e := p.(type) {
	case *events.ScheduleCreated:
		*s = Schedule{ScheduleID: e.ScheduleID, OrgID: e.OrgID, Name: e.Name, At: e.At, Cron: e.Cron, Target: e.Target,
			Epoch: e.Epoch, TimeScale: e.TimeScale, After: e.Epoch, CreatedBy: rec.Metadata.UserID,
			creator: rec.Metadata, exists: true}
		if e.Cron != "" {
			if s.spec, err = parseCron(e.Cron); err != nil {
				return fmt.Errorf("schedule %s: cron %q: %w", e.ScheduleID, e.Cron, err)
			}
		}
	case *events.SchedulePaused:
		s.Paused = true
	case *events.ScheduleResumed:
		s.Paused = false
		// Slots that passed while paused are skipped.
		if now := s.ProcessTime(rec.Time); now.After(s.After) {
			s.After = now
		}
	case *events.ScheduleFired:
		slot := e.Slot.UTC()
		s.LastFired, s.After, s.LastLotID, s.lastID = &slot, slot, e.LotID, rec.ID
		s.Firings++
	case *events.ScheduleFiringSkipped:
		slot := e.Slot.UTC()
		s.After, s.LastSkip = slot, &Skip{Slot: slot, Reason: e.Reason}
		s.Skips++
	}
	s.Revision = rec.Revision
	return nil
}

// Done reports whether a one-shot schedule's time has come (it fired, or
// was skipped).
func (s *Schedule) Done() bool { return s.At != nil && (s.LastFired != nil || s.LastSkip != nil) }

// Due returns the next slot to fire at wall time now, and how many
// missed slots before it are skipped (more than MaxCatchUp were missed).
func (s *Schedule) Due(now time.Time) (slot time.Time, skipped int, ok bool) {
	if !s.exists || s.Paused || s.Done() {
		return time.Time{}, 0, false
	}
	p := s.ProcessTime(now)
	if s.At != nil {
		at := s.At.UTC()
		return at, 0, !at.After(p)
	}
	var due []time.Time
	for next, n := s.spec.Next(s.After), 0; !next.IsZero() && !next.After(p) && n < 100000; next, n = s.spec.Next(next), n+1 {
		due = append(due, next)
		if len(due) > MaxCatchUp {
			due = due[1:]
			skipped++
		}
	}
	if len(due) == 0 {
		return time.Time{}, 0, false
	}
	return due[0], skipped, true
}

// Fire decides the firing of slot: refused unless it is the slot due.
func (s *Schedule) Fire(now, slot time.Time, lotID string) (*events.ScheduleFired, error) {
	due, skipped, ok := s.Due(now)
	if !ok || !due.Equal(slot) {
		return nil, refuse(fmt.Sprintf("slot %s of schedule %s is not due", slot.Format(time.RFC3339), s.ScheduleID))
	}
	return &events.ScheduleFired{ScheduleID: s.ScheduleID, Slot: slot, LotID: lotID, Skipped: skipped}, nil
}

// Skip decides that slot starts nothing, for reason: refused unless it is
// the slot due. Like a firing, it is done with the slot.
func (s *Schedule) Skip(now, slot time.Time, reason string) (*events.ScheduleFiringSkipped, error) {
	due, skipped, ok := s.Due(now)
	if !ok || !due.Equal(slot) {
		return nil, refuse(fmt.Sprintf("slot %s of schedule %s is not due", slot.Format(time.RFC3339), s.ScheduleID))
	}
	return &events.ScheduleFiringSkipped{ScheduleID: s.ScheduleID, Slot: slot, Reason: reason, Skipped: skipped}, nil
}

// Command decides pause and resume.
func (s *Schedule) Command(verb string) (events.Payload, error) {
	if !s.exists {
		return nil, ErrNotFound
	}
	switch {
	case s.Done():
		return nil, refuse(fmt.Sprintf("schedule %s has fired its one time", s.ScheduleID))
	case verb == LotPause && s.Paused:
		return nil, refuse(fmt.Sprintf("schedule %s is already paused", s.ScheduleID))
	case verb == LotPause:
		return &events.SchedulePaused{ScheduleID: s.ScheduleID}, nil
	case verb == LotResume && !s.Paused:
		return nil, refuse(fmt.Sprintf("schedule %s is not paused", s.ScheduleID))
	case verb == LotResume:
		return &events.ScheduleResumed{ScheduleID: s.ScheduleID}, nil
	}
	return nil, fmt.Errorf("schedule command %q: unknown verb", verb)
}
