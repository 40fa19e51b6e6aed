package events

import "fmt"

// ValidateAppend checks an append's arguments the same way in every store:
// a valid stream name (ValidateStream), an expected revision that is a
// revision or one of the Expect… constants, at least one event and at most
// max (0: no limit), and events that each have a type and an id no other
// event of the append has. It returns an error wrapping ErrInvalid; stores
// check what their own driver needs on top (KurrentDB: UUID ids).
func ValidateAppend(stream string, expected Expected, evs []Event, max int) error {
	if err := ValidateStream(stream); err != nil {
		return err
	}
	if expected < ExpectNoStream {
		return fmt.Errorf("expected %d: %w", int64(expected), ErrInvalid)
	}
	if len(evs) == 0 {
		return fmt.Errorf("no events: %w", ErrInvalid)
	}
	if max > 0 && len(evs) > max {
		return fmt.Errorf("%d events, at most %d in one append: %w", len(evs), max, ErrInvalid)
	}
	seen := make(map[string]bool, len(evs))
	for i, ev := range evs {
		if ev.ID == "" || ev.Type == "" {
			return fmt.Errorf("event %d without id or type: %w", i, ErrInvalid)
		}
		if seen[ev.ID] {
			return fmt.Errorf("event id %s twice: %w", ev.ID, ErrInvalid)
		}
		seen[ev.ID] = true
	}
	return nil
}
