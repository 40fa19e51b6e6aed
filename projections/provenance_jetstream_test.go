package projections_test

import (
	"encoding/json"
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
	svc, err := actors.New(actors.Config{TimeScale: 0, Node: "n1"}, store, nil, engines, nil)
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
	// Two messages of the run holding one telemetry event each, a few
	// revisions apart.
	rewrite, del := -1, -1
	for i, m := range msgs {
		single := strings.HasPrefix(m.Subject, "ev.run."+acc.RunID+".") && m.Header.Get("Spectra-Count") == "" &&
			strings.HasPrefix(m.Header.Get("Spectra-Type"), events.TypeTelemetryRecorded)
		switch {
		case !single:
		case rewrite < 0 && revision(t, m) >= 3:
			rewrite = i
		case rewrite >= 0 && del < 0 && revision(t, m) >= revision(t, msgs[rewrite])+3:
			del = i
		}
	}
	if rewrite < 0 || del < 0 {
		t.Fatalf("no single-event telemetry messages to edit among %d", len(msgs))
	}
	r1, r2 := revision(t, msgs[rewrite]), revision(t, msgs[del])

	// The stream denies deleting and purging messages, and that cannot be
	// switched off; but someone who holds the NATS account can delete the
	// whole stream and create it again with the same configuration, then
	// publish its messages back in order: one rewritten, one left out.
	if err := js.DeleteStream(ctx, jetstream.DefaultStream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, info.Config); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if i == del {
			continue
		}
		out := nats.NewMsg(m.Subject)
		for k, vs := range m.Header {
			if !strings.HasPrefix(k, "Nats-") || k == nats.MsgIdHdr {
				out.Header[k] = vs
			}
		}
		out.Data = m.Data
		if i == rewrite {
			out.Data = []byte(strings.Replace(string(m.Data), `"progress":`, `"progress":1,"x":`, 1))
			if string(out.Data) == string(m.Data) {
				t.Fatalf("revision %d holds no progress to rewrite: %s", r1, m.Data)
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

func revision(t *testing.T, m *njs.RawStreamMsg) uint64 {
	t.Helper()
	var r uint64
	if err := json.Unmarshal([]byte(m.Header.Get("Spectra-Revision")), &r); err != nil {
		t.Fatalf("message %d: revision %q", m.Sequence, m.Header.Get("Spectra-Revision"))
	}
	return r
}
