package run_test

import (
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/run"
)

// BenchmarkRunSecond is the pure part of one second of a real-time ion
// run as its actor does it, without the actor, the clock or the store:
// ten engine steps each advanced through the aggregate, the telemetry
// batch (and alarms) they cause encoded and chained as events, then
// folded back from their payloads with their links as the actor does
// once the store acknowledged them. 10,000 real-time runs do this 10,000
// times a second.
func BenchmarkRunSecond(b *testing.B) {
	rc, err := ion.ParseRecipe([]byte(`{"species":"P","energy_kev":40.0,"dose_atoms_cm2":1e15,"tilt_deg":7.0,"twist_deg":0.0,` +
		`"beam_current_ma":0.5,"scan_speed_mm_s":50.0,"wafer_diameter_mm":300,"wafer_id":"W12345","lot_id":"LOT-001"}`))
	if err != nil {
		b.Fatal(err)
	}
	p := run.Policy{MaxRetries: 2, RetryBase: time.Minute, RetryCap: 10 * time.Minute, SoftLimit: 1e6 * time.Hour, HardLimit: 2e6 * time.Hour}
	var r *run.Run
	var eng *ion.Engine
	fresh := func() {
		r = run.New("ION-20261203-00000001", p)
		for _, pl := range []events.Payload{requested(), started(0)} {
			ev, err := events.New(pl, creator)
			if err != nil {
				b.Fatal(err)
			}
			r.ApplyPayload(events.Record{ID: ev.ID, Stream: events.RunStream(r.ID), Revision: r.Revision + 1, Position: r.Position + 1,
				Type: ev.Type, Time: time.Unix(1000, 0).UTC(), Data: ev.Data, Metadata: ev.Metadata}, pl)
		}
		if eng, err = ion.NewEngine(rc, process.Options{Seed: 7}); err != nil {
			b.Fatal(err)
		}
	}
	fresh()
	stream := events.RunStream(r.ID)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if r.Done() {
			b.StopTimer()
			fresh()
			b.StartTimer()
		}
		var out []events.Payload
		for range process.StepsPerBatch {
			out = append(out, r.Advance(eng.Step(), eng.SafeState())...)
			if r.Done() {
				break
			}
		}
		if len(out) == 0 {
			continue
		}
		md := r.Creator
		md.Node, md.CausationID = "node-1", r.RequestID
		evs := make([]events.Event, len(out))
		for i, pl := range out {
			if evs[i], err = events.New(pl, md); err != nil {
				b.Fatal(err)
			}
		}
		head := events.Chain(r.Head, evs, nil)
		now := time.Now().UTC()
		for i, ev := range evs {
			rec := events.Record{ID: ev.ID, Stream: stream, Revision: r.Revision + 1, Position: r.Position + 1,
				Type: ev.Type, Time: now, Data: ev.Data, Metadata: ev.Metadata}
			link := head // as the actor does: each event's link is the next one's Prev
			if i+1 < len(evs) {
				link = evs[i+1].Metadata.Prev
			}
			r.ApplyLinked(rec, out[i], link)
		}
	}
}
