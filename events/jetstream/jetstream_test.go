package jetstream_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/eventstest"
	"github.com/spectra-fab/spectra/events/jetstream"
)

// openStore opens a store on an embedded server in dir; t.Cleanup closes
// it (and with it the server).
func openStore(t testing.TB, dir string, sync bool) *jetstream.Store {
	t.Helper()
	return openStoreWith(t, dir, sync, jetstream.Options{})
}

// openStoreWith is openStore with the store's options o.
func openStoreWith(t testing.TB, dir string, sync bool, o jetstream.Options) *jetstream.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := jetstream.Open(ctx, jetstream.Config{DataDir: dir, Sync: sync, Options: o})
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { conformance(t, openStore) }

// conformance runs the store conformance suite on stores that open opens
// (sync off) in a directory of their own, reopened in the same one.
func conformance(t *testing.T, open func(testing.TB, string, bool) *jetstream.Store) {
	dirs := map[events.Store]string{}
	eventstest.Run(t, eventstest.Harness{
		Open: func(t *testing.T) events.Store {
			dir := t.TempDir()
			s := open(t, dir, false)
			dirs[s] = dir
			return s
		},
		Reopen: func(t *testing.T, s events.Store) events.Store {
			dir := dirs[s]
			if err := s.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
			r := open(t, dir, false)
			dirs[r] = dir
			return r
		},
	})
}

func newEvent(t testing.TB) events.Event {
	t.Helper()
	ev, err := events.New(events.RunQueued{JobID: "job-1", Queue: "ion"}, events.Metadata{OrgID: "org-a"})
	if err != nil {
		t.Fatalf("events.New = %v", err)
	}
	return ev
}

// TestRetryAfterLostAck repeats an append that succeeded, as a writer does
// whose acknowledgement was lost: from a fresh store (no cached state), and
// again past JetStream's duplicate window.
func TestRetryAfterLostAck(t *testing.T) {
	for _, n := range []int{1, 4} {
		t.Run(map[int]string{1: "single", 4: "batch"}[n], func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, false)
			ctx := t.Context()
			if _, err := s.Append(ctx, "run-ack", events.ExpectNoStream, newEvent(t)); err != nil {
				t.Fatalf("Append = %v", err)
			}
			evs := make([]events.Event, n)
			for i := range evs {
				evs[i] = newEvent(t)
			}
			js := s.JetStream()
			last, err := js.Stream(ctx, jetstream.DefaultStream)
			if err != nil {
				t.Fatal(err)
			}
			info, err := last.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			res0, err := s.Append(ctx, "run-ack", events.ExpectRevision(0), evs...)
			if err != nil {
				t.Fatalf("first Append = %v", err)
			}
			// One message, whatever n: the event at index i of the message
			// at sequence q is at position q×1000+i.
			want := (info.State.LastSeq+1)*jetstream.PositionsPerMessage + uint64(n-1)
			if res0.Revision != uint64(n) || res0.Position != want {
				t.Fatalf("first Append = %+v, want revision %d position %d", res0, n, want)
			}
			// The retry: same events, same expectation. A fresh store on
			// the same server has no cached state, as after a lost ack
			// in another process.
			nc := s.Conn()
			fresh, err := jetstream.New(ctx, nc, jetstream.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			res, err := fresh.Append(ctx, "run-ack", events.ExpectRevision(0), evs...)
			if err != nil || res != res0 {
				t.Fatalf("retried Append = %+v, %v; want the original %+v", res, err, res0)
			}
			// Past the duplicate window the retry is still recognised:
			// the store reads the stream, not just the window.
			noWindow, err := jetstream.New(ctx, nc, jetstream.Options{DuplicateWindow: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer noWindow.Close()
			time.Sleep(250 * time.Millisecond)
			res, err = noWindow.Append(ctx, "run-ack", events.ExpectRevision(0), evs...)
			if err != nil || res != res0 {
				t.Fatalf("retried Append past the window = %+v, %v; want the original %+v", res, err, res0)
			}
			recs, err := s.ReadStream(ctx, "run-ack", events.Forwards, 0, 0)
			if err != nil || len(recs) != n+1 {
				t.Fatalf("ReadStream = %d records, %v; want %d", len(recs), err, n+1)
			}
		})
	}
}

// TestRetryRawDuplicate publishes an event bypassing the store, as a first
// attempt whose ack was lost, then appends it through the store with
// ExpectAny: JetStream answers with a duplicate ack, which the store turns
// into the original result.
func TestRetryRawDuplicate(t *testing.T) {
	s := openStore(t, t.TempDir(), false)
	ctx := t.Context()
	ev := newEvent(t)
	m := nats.NewMsg("ev.run.raw.org-a")
	m.Data = ev.Data
	m.Header.Set(nats.MsgIdHdr, ev.ID)
	m.Header.Set("Spectra-Type", ev.Type)
	m.Header.Set("Spectra-Revision", "0")
	ack, err := s.JetStream().PublishMsg(ctx, m)
	if err != nil {
		t.Fatalf("raw publish = %v", err)
	}
	for _, exp := range []events.Expected{events.ExpectAny, events.ExpectNoStream} {
		res, err := s.Append(ctx, "run-raw", exp, ev)
		if err != nil || res != (events.AppendResult{Revision: 0, Position: ack.Sequence * jetstream.PositionsPerMessage}) {
			t.Fatalf("Append(%v) of the stored event = %+v, %v; want revision 0 position %d", exp, res, err, ack.Sequence*jetstream.PositionsPerMessage)
		}
	}
	recs, err := s.ReadStream(ctx, "run-raw", events.Forwards, 0, 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ReadStream = %d records, %v; want 1", len(recs), err)
	}
}

func TestSyncOption(t *testing.T) {
	for _, sync := range []bool{true, false} {
		dir := t.TempDir()
		s := openStore(t, dir, sync)
		ctx := t.Context()
		if _, err := s.Append(ctx, "run-sync", events.ExpectNoStream, newEvent(t)); err != nil {
			t.Fatalf("Append = %v", err)
		}
		// The embedded server runs with the fsync policy asked for.
		if got := jetstream.SyncAlways(s); got != sync {
			t.Errorf("Sync %v: server SyncAlways = %v", sync, got)
		}
		s.Close()
		// What was acknowledged is there after a restart.
		r := openStore(t, dir, sync)
		recs, err := r.ReadStream(ctx, "run-sync", events.Forwards, 0, 0)
		if err != nil || len(recs) != 1 {
			t.Fatalf("ReadStream after restart = %d records, %v; want 1", len(recs), err)
		}
	}
}

func TestKeyValueAndObjectStore(t *testing.T) {
	s := openStore(t, t.TempDir(), false)
	ctx := t.Context()
	kv, err := s.KeyValue(ctx, "checkpoints")
	if err != nil {
		t.Fatalf("KeyValue = %v", err)
	}
	if _, err := kv.Put(ctx, "jobs", []byte("42")); err != nil {
		t.Fatalf("Put = %v", err)
	}
	kv2, err := s.KeyValue(ctx, "checkpoints") // opens the existing bucket
	if err != nil {
		t.Fatalf("second KeyValue = %v", err)
	}
	if e, err := kv2.Get(ctx, "jobs"); err != nil || string(e.Value()) != "42" {
		t.Fatalf("Get = %v, %v; want 42", e, err)
	}
	obs, err := s.ObjectStore(ctx, "artifacts", time.Hour)
	if err != nil {
		t.Fatalf("ObjectStore = %v", err)
	}
	if _, err := obs.PutBytes(ctx, "run-1/log.txt", []byte("hello")); err != nil {
		t.Fatalf("PutBytes = %v", err)
	}
	if b, err := obs.GetBytes(ctx, "run-1/log.txt"); err != nil || string(b) != "hello" {
		t.Fatalf("GetBytes = %q, %v", b, err)
	}
	if _, err := s.ReadStream(ctx, "run-1", events.Forwards, 0, 0); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("KV and object store writes leaked into the log: ReadStream = %v", err)
	}
	var _ natsjs.KeyValue = kv
}

// TestAppendMessages checks how appends map to messages: one message per
// append of one organisation's events, an atomic batch when they span
// organisations or outgrow a message, and reads that expand them back,
// an organisation's read filtered by the server.
func TestAppendMessages(t *testing.T) {
	s := openStore(t, t.TempDir(), false)
	ctx := t.Context()
	st, err := s.JetStream().Stream(ctx, jetstream.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	messages := func() uint64 {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	ev := func(org string, size int) events.Event {
		return events.Event{ID: events.NewID(), Type: "TelemetryRecorded.v1",
			Data: []byte(`"` + strings.Repeat("x", size) + `"`), Metadata: events.Metadata{OrgID: org}}
	}
	appends := []struct {
		name     string
		stream   string
		evs      []events.Event
		messages uint64
	}{
		{"one org", "run-a", []events.Event{ev("org-a", 10), ev("org-a", 10), ev("org-a", 10)}, 1},
		{"two orgs", "run-b", []events.Event{ev("org-a", 10), ev("org.b *", 10), ev("org.b *", 10)}, 2},
		{"over a message", "run-c", []events.Event{ev("org-a", 600<<10), ev("org-a", 600<<10)}, 2},
		{"one event", "run-a", []events.Event{ev("org-a", 10)}, 1},
	}
	for _, a := range appends {
		before := messages()
		if _, err := s.Append(ctx, a.stream, events.ExpectAny, a.evs...); err != nil {
			t.Fatalf("%s: Append = %v", a.name, err)
		}
		if got := messages() - before; got != a.messages {
			t.Errorf("%s: %d messages, want %d", a.name, got, a.messages)
		}
	}
	recs, err := s.ReadStream(ctx, "run-a", events.Forwards, 1, 0)
	if err != nil || len(recs) != 3 || recs[0].Revision != 1 || recs[2].ID != appends[3].evs[0].ID {
		t.Fatalf("ReadStream(run-a from 1) = %+v, %v; want revisions 1-3", recs, err)
	}
	for _, org := range []string{"org-a", "org.b *"} {
		recs, err := s.ReadAll(ctx, 0, events.Filter{OrgID: org}, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, a := range appends {
			for _, e := range a.evs {
				if e.Metadata.OrgID == org {
					want++
				}
			}
		}
		if len(recs) != want {
			t.Errorf("ReadAll(org %q) = %d records, want %d", org, len(recs), want)
		}
		for i, r := range recs {
			if r.Metadata.OrgID != org || i > 0 && r.Position <= recs[i-1].Position {
				t.Errorf("ReadAll(org %q)[%d] = %s of %q at %d", org, i, r.ID, r.Metadata.OrgID, r.Position)
			}
		}
	}
	big, err := s.ReadStream(ctx, "run-c", events.Backwards, math.MaxUint64, 0)
	if err != nil || len(big) != 2 || len(big[0].Data) != 600<<10+2 {
		t.Fatalf("ReadStream(run-c) = %d records, %v", len(big), err)
	}
}
