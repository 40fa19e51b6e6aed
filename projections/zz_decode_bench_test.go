package projections_test

import (
	"testing"

	"github.com/spectra-fab/spectra/events"
)

func BenchmarkZZDecodeTypes(b *testing.B) {
	evs, _ := benchRun(3)
	seen := map[string]bool{}
	for _, ev := range evs {
		if seen[ev.Type] || events.BaseType(ev.Type) == events.TypeTelemetryRecorded {
			continue
		}
		seen[ev.Type] = true
		rec := events.Record{Type: ev.Type, Data: ev.Data, Stream: "run-x"}
		b.Run(events.BaseType(ev.Type), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := events.Decode(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
