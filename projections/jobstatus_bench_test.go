package projections_test

import (
	"encoding/json"
	"testing"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// BenchmarkJobStatusApply measures the job-status model alone on a run's
// typical events: telemetry batches of ten samples of seven fields.
func BenchmarkJobStatusApply(b *testing.B) {
	mk := func(rev uint64, p events.Payload) events.Record {
		ev, err := events.New(p, events.Metadata{OrgID: "org-1", UserID: "u"})
		if err != nil {
			b.Fatal(err)
		}
		return events.Record{ID: ev.ID, Stream: "run-ION-20261128-AAAAAAAA", Revision: rev, Position: rev + 1,
			Type: ev.Type, Data: ev.Data, Metadata: ev.Metadata}
	}
	samples := map[string][]float64{}
	for _, f := range []string{"time_s", "beam_current_ma", "chamber_pressure_torr", "analyzer_field_v",
		"integrated_dose_atoms_cm2", "dose_uniformity_pct", "wafer_temp_c"} {
		samples[f] = []float64{1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0}
	}
	tele := mk(2, &events.TelemetryRecorded{JobID: "job-1", Samples: samples, Progress: 40, CurrentStep: "Implanting (33% dose)"})
	j := projections.NewJobStatus()
	_ = j.Apply(mk(0, &events.RunRequested{RunID: "ION-20261128-AAAAAAAA", JobID: "job-1", Kind: process.KindIon, Recipe: json.RawMessage(`{}`)}))
	_ = j.Apply(mk(1, &events.RunStarted{JobID: "job-1"}))
	b.ResetTimer()
	for range b.N {
		if err := j.Apply(tele); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
