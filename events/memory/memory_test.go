package memory_test

import (
	"testing"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/eventstest"
	"github.com/spectra-fab/spectra/events/memory"
)

func TestConformance(t *testing.T) {
	eventstest.Run(t, eventstest.Harness{
		Open: func(t *testing.T) events.Store {
			s := memory.New()
			t.Cleanup(func() { s.Close() })
			return s
		},
		Reopen: func(t *testing.T, s events.Store) events.Store {
			m := s.(*memory.Store)
			m.Close()
			r := m.Reopen()
			t.Cleanup(func() { r.Close() })
			return r
		},
	})
}
