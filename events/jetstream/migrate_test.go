package jetstream

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
)

// TestMigrateFirstLayout: a log of the first subject layout (ev.<category>.
// <stream id>, one event per message) is rewritten when a store opens on
// it, also after a crash in the middle of the rewrite: its events keep
// their streams, revisions, ids, metadata and times, sit at positions
// sequence×1000, are found by organisation, and take appends with the
// expected revision; the projections' checkpoints are gone.
func TestMigrateFirstLayout(t *testing.T) {
	for _, crash := range []string{"none", "after the copy", "during the copy back"} {
		t.Run(crash, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := t.TempDir()
			s, err := Open(ctx, Config{DataDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			js := s.JetStream()
			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: checkpointsBucket})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Put(ctx, "jobs", []byte("3")); err != nil {
				t.Fatal(err)
			}
			// As the first store appended: ev.run.<id>, its headers, the
			// expected last sequence on the subject.
			type old struct{ stream, org string }
			writes := []old{{"run-ION-A", "org-1"}, {"run-ION-B", "org-2"}, {"run-ION-A", "org-1"}, {"run-ION-B", "org-2"}, {"run-ION-A", "org-1"}}
			revs, last := map[string]uint64{}, map[string]uint64{}
			var times []time.Time
			for i, w := range writes {
				m := nats.NewMsg("ev.run." + events.StreamID(w.stream))
				m.Header.Set(nats.MsgIdHdr, "ev-"+strconv.Itoa(i))
				m.Header.Set(hdrType, "spectra.TestEvent")
				m.Header.Set(hdrRevision, strconv.FormatUint(revs[w.stream], 10))
				m.Header.Set(hdrMetadata, `{"org_id":"`+w.org+`","user_id":"u-1"}`)
				m.Header.Set(hdrExpectedLastSubjSeq, strconv.FormatUint(last[w.stream], 10))
				m.Data = []byte(`{"i":` + strconv.Itoa(i) + `}`)
				ack, err := js.PublishMsg(ctx, m)
				if err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				revs[w.stream]++
				last[w.stream] = ack.Sequence
				raw, err := s.stream.GetMsg(ctx, ack.Sequence)
				if err != nil {
					t.Fatal(err)
				}
				times = append(times, raw.Time.UTC())
				time.Sleep(5 * time.Millisecond) // a copy made now has other times
			}
			switch crash {
			case "after the copy": // (1) and (3) done, (4) not begun
				info, _ := s.stream.Info(ctx)
				if _, err := relayoutCopy(ctx, js, s.stream, jetstream.StreamConfig{Name: info.Config.Name + relayoutSuffix,
					Subjects: []string{relayoutPrefix + ">"}}, toCurrentLayout); err != nil {
					t.Fatal(err)
				}
				if err := js.DeleteStream(ctx, info.Config.Name); err != nil {
					t.Fatal(err)
				}
			case "during the copy back": // (4) stopped after the first message
				info, _ := s.stream.Info(ctx)
				if _, err := relayoutCopy(ctx, js, s.stream, jetstream.StreamConfig{Name: info.Config.Name + relayoutSuffix,
					Subjects: []string{relayoutPrefix + ">"}}, toCurrentLayout); err != nil {
					t.Fatal(err)
				}
				if err := js.DeleteStream(ctx, info.Config.Name); err != nil {
					t.Fatal(err)
				}
				if _, err := js.CreateStream(ctx, info.Config); err != nil {
					t.Fatal(err)
				}
				if _, err := js.Publish(ctx, "ev.run.ION-A.org-1", []byte(`{"i":0}`)); err != nil {
					t.Fatal(err)
				}
			}
			_ = s.Close()

			for open := range 2 { // migrated, then opened as it is
				s, err := Open(ctx, Config{DataDir: dir})
				if err != nil {
					t.Fatalf("open %d: %v", open, err)
				}
				recs, err := s.ReadStream(ctx, "run-ION-A", events.Forwards, 0, 0)
				if err != nil || len(recs) != 3+open { // the first open appends one
					t.Fatalf("open %d: ReadStream = %d records, %v; want %d", open, len(recs), err, 3+open)
				}
				recs = recs[:3]
				for i, r := range recs {
					seq := []uint64{1, 3, 5}[i]
					if r.Revision != uint64(i) || r.ID != "ev-"+strconv.FormatUint(seq-1, 10) || r.Position != seq*PositionsPerMessage ||
						r.Type != "spectra.TestEvent" || r.Metadata.OrgID != "org-1" || r.Metadata.UserID != "u-1" ||
						!r.Time.Equal(times[seq-1]) || string(r.Data) != `{"i":`+strconv.FormatUint(seq-1, 10)+`}` {
						t.Errorf("open %d: record %d = %+v (want time %v)", open, i, r, times[seq-1])
					}
				}
				org2, err := s.ReadAll(ctx, 0, events.Filter{OrgID: "org-2"}, 0)
				if err != nil || len(org2) != 2 || org2[0].Stream != "run-ION-B" || org2[1].Revision != 1 {
					t.Errorf("open %d: org-2's events = %+v, %v", open, org2, err)
				}
				if _, err := s.JetStream().Stream(ctx, DefaultStream+relayoutSuffix); !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Errorf("open %d: the copy is still there: %v", open, err)
				}
				if open == 0 {
					if _, err := s.JetStream().KeyValue(ctx, checkpointsBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
						t.Errorf("the projections' checkpoints survived the migration: %v", err)
					}
					ev, _ := events.New(&events.RunQueued{JobID: "job-1", Queue: "q"}, events.Metadata{OrgID: "org-1"})
					if _, err := s.Append(ctx, "run-ION-A", events.ExpectRevision(1), ev); !errors.Is(err, events.ErrConflict) {
						t.Errorf("append expecting revision 1 of 2 = %v, want a conflict", err)
					}
					res, err := s.Append(ctx, "run-ION-A", events.ExpectRevision(2), ev)
					if err != nil || res.Revision != 3 {
						t.Errorf("append expecting revision 2 = %+v, %v", res, err)
					}
				}
				_ = s.Close()
			}
		})
	}
}
