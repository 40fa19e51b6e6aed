package projections_test

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
	"github.com/spectra-fab/spectra/projections"
)

// TestVerifierNamesEditsMadeInJetStream: a run recorded by the actors in
// a real JetStream stream is edited there with the raw nats.go API, as
// someone holding the NATS account could, bypassing Spectra: one event
// rewritten, another deleted. Verify names both breaks and reports the
// run as diverging at the rewritten event.
func TestVerifierNamesEditsMadeInJetStream(t *testing.T) {
	ctx := t.Context()
	srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err := jetstream.New(ctx, nc, jetstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	engines := map[process.Kind]actors.EngineFactory{process.KindIon: processtest.Factory{Kind: process.KindIon}}
	// Paced (time scale 10: a process second every 100 ms, 0.8 s in all),
	// so the run's events are appended as they happen, in several
	// messages; at time scale 0 the actor folds a run's steps into one
	// append, and no event would end a message. (At time scale 100 a
	// loaded CI machine's appends took longer than a process second, the
	// actor folded the batches stepped meanwhile, and the 17 events came
	// in 3 messages.)
	svc, err := actors.New(actors.Config{TimeScale: 10, Node: "n1"}, store, nil, engines, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	acc, err := svc.CreateRun(ctx, actors.CreateRun{Kind: process.KindIon, Recipe: json.RawMessage(`{"steps":80,"alarm_at":33}`),
		Meta: events.Metadata{OrgID: "org-1", UserID: "eng-1", Role: "engineer"}})
	if err != nil {
		t.Fatal(err)
	}
	waitTerminal(t, store, acc.RunID)
	v := &projections.Verifier{Store: store, Engines: actors.EngineFunc(engines)}
	if rep, err := v.Verify(ctx, "org-1", acc.RunID); err != nil || !rep.Identical || !rep.Chain.Intact() || !rep.Chain.Sealed {
		t.Fatalf("Verify(as recorded) = %+v, %v", rep, err)
	}

	// Every message of the stream, raw.
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, jetstream.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*njs.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		if m, err := stream.GetMsg(ctx, seq); err == nil {
			msgs = append(msgs, m)
		}
	}
	// The run's events, message by message (a message holds one event,
	// or several framed in its body: events/jetstream/codec.go).
	frames := make([][]frame, len(msgs))
	type at struct{ msg, frame int }
	var evs []at
	for i, m := range msgs {
		if !strings.HasPrefix(m.Subject, "ev.run."+acc.RunID+".") {
			continue
		}
		frames[i] = framesOf(t, m)
		for k := range frames[i] {
			evs = append(evs, at{i, k})
		}
	}
	// Rewrite a telemetry event from revision 3 on; delete an event a few
	// revisions later that ends its message (so no later event of that
	// message is renumbered) and is not the stream's last.
	rewrite, del := -1, -1
	for j, e := range evs {
		f := frames[e.msg][e.frame]
		switch {
		case rewrite < 0 && j >= 3 && strings.HasPrefix(string(f.typ), events.TypeTelemetryRecorded):
			rewrite = j
		case rewrite >= 0 && del < 0 && j >= rewrite+3 && j < len(evs)-1 && e.frame == len(frames[e.msg])-1 &&
			(len(frames[e.msg]) > 2 || len(frames[e.msg]) == 1):
			del = j
		}
	}
	if rewrite < 0 || del < 0 {
		t.Fatalf("no events to edit among %d in %d messages", len(evs), len(msgs))
	}
	r1, r2 := uint64(rewrite), uint64(del) // the run's events are revisions 0, 1, …
	t.Logf("%d events in %d messages: rewriting revision %d (message %d), deleting revision %d (message %d)",
		len(evs), len(msgs), r1, msgs[evs[rewrite].msg].Sequence, r2, msgs[evs[del].msg].Sequence)
	f := &frames[evs[rewrite].msg][evs[rewrite].frame]
	edited := strings.Replace(string(f.data), `"progress":`, `"progress":1,"x":`, 1)
	if edited == string(f.data) {
		t.Fatalf("revision %d holds no progress to rewrite: %s", r1, f.data)
	}
	f.data = []byte(edited)
	d := evs[del]
	frames[d.msg] = frames[d.msg][:d.frame]

	// The stream denies deleting and purging messages, and that cannot be
	// switched off; but someone who holds the NATS account can delete the
	// whole stream and create it again with the same configuration, then
	// publish its messages back in order: one event rewritten, one left out.
	if err := js.DeleteStream(ctx, jetstream.DefaultStream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, info.Config); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		out := nats.NewMsg(m.Subject)
		for k, vs := range m.Header {
			if !strings.HasPrefix(k, "Nats-") || k == nats.MsgIdHdr {
				out.Header[k] = vs
			}
		}
		out.Data = m.Data
		switch {
		case frames[i] == nil: // not the run's
		case len(frames[i]) == 0:
			continue // its one event deleted
		case m.Header.Get("Spectra-Count") == "":
			out.Data = frames[i][0].data
		default:
			out.Header.Set("Spectra-Count", strconv.Itoa(len(frames[i])))
			out.Data = nil
			for _, f := range frames[i] {
				for _, b := range [][]byte{f.id, f.typ, f.md, f.data} {
					out.Data = binary.AppendUvarint(out.Data, uint64(len(b)))
					out.Data = append(out.Data, b...)
				}
			}
		}
		if _, err := js.PublishMsg(ctx, out); err != nil {
			t.Fatal(err)
		}
	}

	rep, err := v.Verify(ctx, "org-1", acc.RunID)
	if err != nil {
		t.Fatal(err)
	}
	var links []uint64
	for _, b := range rep.Chain.Breaks {
		if b.Kind == events.BreakLink {
			links = append(links, b.Revision)
		}
	}
	if len(links) != 2 || links[0] != r1+1 || links[1] != r2+1 {
		t.Errorf("Chain.Breaks = %+v, want broken links at revisions %d (after the rewrite) and %d (after the deletion)",
			rep.Chain.Breaks, r1+1, r2+1)
	}
	if rep.Identical || rep.Divergence == nil || rep.Divergence.Revision != r1 {
		t.Errorf("Divergence = %+v, want the rewritten revision %d", rep.Divergence, r1)
	}
}

// frame is one event of a stored message: id, type, metadata (empty: the
// message's) and payload.
type frame struct{ id, typ, md, data []byte }

// framesOf splits a message into its events, as events/jetstream frames
// them.
func framesOf(t *testing.T, m *njs.RawStreamMsg) []frame {
	t.Helper()
	if m.Header.Get("Spectra-Count") == "" {
		return []frame{{id: []byte(m.Header.Get(nats.MsgIdHdr)), typ: []byte(m.Header.Get("Spectra-Type")), data: m.Data}}
	}
	var out []frame
	body := m.Data
	field := func() []byte {
		n, k := binary.Uvarint(body)
		if k <= 0 || uint64(len(body)-k) < n {
			t.Fatalf("message %d: bad framing", m.Sequence)
		}
		f := body[k : k+int(n)]
		body = body[k+int(n):]
		return f
	}
	for len(body) > 0 {
		out = append(out, frame{id: field(), typ: field(), md: field(), data: field()})
	}
	return out
}
