package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/spectra-fab/spectra/events"
)

// TestOrgStreamTypes: ?types= sends only the message types asked for, in
// the replay and live; completed still lists the artifacts stored before
// it; an unknown type is refused before the upgrade.
func TestOrgStreamTypes(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{})
	done, failed := "ION-20260101-0000E101", "ION-20260101-0000E102"
	st.fabricate(t, done, "org-1")
	st.fabricate(t, failed, "org-1")
	tok := tokenOf(t, RoleViewer, "org-1")
	telemetry := &events.TelemetryRecorded{JobID: "job-0000e1010000", Samples: map[string][]float64{"time_s": {1}}}
	st.appendRaw(t, done, "org-1", telemetry,
		&events.ArtifactStored{JobID: "job-0000e1010000", Name: "telemetry.csv", ContentType: "text/csv", Size: 10},
		&events.RunCompleted{JobID: "job-0000e1010000"})

	c := mustDial(t, st, "/api/stream?from=0&types=completed,error,cancelled", tok)
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	read := func() wsMsg {
		t.Helper()
		var m wsMsg
		if err := c.conn.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
		return m
	}
	if m := read(); m.Type != MessageConnected || strings.Join(toStrings(m.Data["types"]), ",") != "completed,error,cancelled" {
		t.Fatalf("first message %s %v, want connected naming the types", m.Type, m.Data)
	}
	m := read()
	if m.Type != MessageCompleted || m.RunID != done {
		t.Fatalf("replayed %s of %s, want only completed of %s", m.Type, m.RunID, done)
	}
	if arts, _ := m.Data["artifacts"].([]any); len(arts) != 1 {
		t.Errorf("completed lists artifacts %v, want the one stored before it", m.Data["artifacts"])
	}
	if m := read(); m.Type != MessageCaughtUp {
		t.Fatalf("then %s, want caught_up", m.Type)
	}
	st.appendRaw(t, failed, "org-1", telemetry, &events.RunPhaseChanged{JobID: "job-0000e1020000", Name: "x"},
		&events.RunFailed{JobID: "job-0000e1020000", Error: "boom"})
	if m := read(); m.Type != MessageError || m.RunID != failed {
		t.Fatalf("live %s of %s, want only error of %s", m.Type, m.RunID, failed)
	}

	if _, res, err := dialWS(t, st, "/api/stream?types=completed,bogus&token="+tok, dialOptions{}); err == nil || res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("types=completed,bogus: err %v; want 422", err)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestStreamAnswersPingAndClose: the client's ping gets its pong and its
// close gets a close back, while the writers own the socket's writes.
func TestStreamAnswersPingAndClose(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{})
	runID := "ION-20260101-0000E103"
	st.fabricate(t, runID, "org-1")
	c := mustDial(t, st, "/api/ion/stream/"+runID, tokenOf(t, RoleViewer, "org-1"))
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	pong := make(chan string, 1)
	c.conn.SetPongHandler(func(data string) error { pong <- data; return nil })
	for m := (wsMsg{}); m.Type != MessageCaughtUp; {
		if err := c.conn.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	if err := c.conn.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// The client sees control frames while it reads: live events give it
	// something to read until the pong came.
	var got string
	for i := 0; got == "" && i < 20; i++ {
		st.appendRaw(t, runID, "org-1", &events.RunPhaseChanged{JobID: "job-0000e1030000", Name: "step"})
		var m wsMsg
		if err := c.conn.ReadJSON(&m); err != nil || m.Type != MessageProgress {
			t.Fatalf("read %v %v, want a live progress", m.Type, err)
		}
		select {
		case got = <-pong:
		default:
		}
	}
	if got != "are you there" {
		t.Errorf("pong %q, want the ping's payload", got)
	}
	if err := c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Errorf("after the client's close: %v, want its close answered (1000)", err)
	}
}

// TestStreamLiveOutlivesWriteTimeout: the write timeout bounds each
// waiting write, not the socket's life: a live event long after the
// replay's last write still arrives.
func TestStreamLiveOutlivesWriteTimeout(t *testing.T) {
	st := newStreamStack(t, streamStackOptions{stream: StreamConfig{WriteTimeout: 100 * time.Millisecond}})
	runID := "ION-20260101-0000E104"
	st.fabricate(t, runID, "org-1")
	c := mustDial(t, st, "/api/stream?from=0", tokenOf(t, RoleViewer, "org-1"))
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for m := (wsMsg{}); m.Type != MessageCaughtUp; {
		if err := c.conn.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	st.appendRaw(t, runID, "org-1", &events.RunQueued{JobID: "job-0000e1040000", Queue: "ion"})
	var m wsMsg
	if err := c.conn.ReadJSON(&m); err != nil || m.Type != MessageProgress {
		t.Fatalf("read %q %v, want the live progress 3 write timeouts after caught_up", m.Type, err)
	}
}
