package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/spectra-fab/spectra/api"
)

// streamMessage is a message of a run's WebSocket stream (api.StreamMessage
// as a client reads it).
type streamMessage struct {
	Type      string          `json:"type"`
	Event     string          `json:"event"`
	RunID     string          `json:"run_id"`
	Timestamp time.Time       `json:"timestamp"`
	Revision  *uint64         `json:"revision"`
	Position  *uint64         `json:"position"`
	Data      json.RawMessage `json:"data"`
	raw       []byte
}

// streamData holds the fields of a message's data the CLI prints.
type streamData struct {
	Status       string   `json:"status"`
	Progress     *float64 `json:"progress"`
	CurrentStep  string   `json:"current_step"`
	Parameter    string   `json:"parameter"`
	Message      string   `json:"message"`
	Severity     string   `json:"severity"`
	Rule         string   `json:"rule"`
	Source       string   `json:"source"`
	ErrorMessage string   `json:"error_message"`
	Reason       string   `json:"reason"`
	Artifact     *struct {
		Name string `json:"name"`
	} `json:"artifact"`
}

// errStreamEnded: the server closed the stream normally before the run's
// end was seen.
var errStreamEnded = errors.New("stream ended before the run did")

// streamURL is the WebSocket URL of a run's stream on the server.
func (c *client) streamURL(kind, runID string, from uint64) (string, error) {
	u, err := url.Parse(strings.TrimRight(c.base, "/"))
	if err != nil {
		return "", fmt.Errorf("server url: %w", err)
	}
	switch u.Scheme {
	case "http", "":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	u.Path += "/api/" + kind + "/stream/" + runID
	u.RawQuery = url.Values{"from": {strconv.FormatUint(from, 10)}}.Encode()
	return u.String(), nil
}

// dialStream opens a run's stream from revision from.
func (c *client) dialStream(ctx context.Context, kind, runID string, from uint64) (*websocket.Conn, error) {
	u, err := c.streamURL(kind, runID, from)
	if err != nil {
		return nil, err
	}
	hdr := http.Header{}
	if c.token != "" {
		hdr.Set("Authorization", "Bearer "+c.token)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	conn, res, err := d.DialContext(ctx, u, hdr)
	if err != nil {
		if res != nil { // refused before the upgrade: the API's error body
			defer res.Body.Close()
			data, _ := io.ReadAll(res.Body)
			e := &apiError{Status: res.StatusCode}
			if json.Unmarshal(data, &e.Body) != nil || e.Body.Error.Code == "" {
				e.Body.Error.Message = strings.TrimSpace(string(data))
			}
			return nil, e
		}
		return nil, fmt.Errorf("connect to %s: %w", u, err)
	}
	return conn, nil
}

// follow reads a run's stream from revision from, calling handle for each
// message, until handle says stop or the run ends. A stream the server
// breaks (slow consumer, shutdown, a network error) is resumed from the
// revision after the last message handled, a few times with back-off;
// the API's refusals (401, 403, 404) are not retried.
func (c *client) follow(ctx context.Context, kind, runID string, from uint64, handle func(streamMessage) (stop bool, err error)) error {
	const maxRetries = 8
	wait := 250 * time.Millisecond
	for attempt := 0; ; attempt++ {
		next, err := c.followOnce(ctx, kind, runID, from, handle)
		if progressed := next > from; progressed {
			attempt, wait = 0, 250*time.Millisecond
		}
		from = next
		var ae *apiError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ae) && ae.Status < 500, errors.Is(err, errStreamEnded), ctx.Err() != nil:
			return err
		case attempt >= maxRetries:
			return fmt.Errorf("follow %s: giving up after %d reconnections: %w", runID, attempt, err)
		}
		fmt.Fprintf(os.Stderr, "stream interrupted (%v); resuming from revision %d\n", err, from)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// followOnce reads one connection's worth of the stream and returns the
// revision to resume from.
func (c *client) followOnce(ctx context.Context, kind, runID string, from uint64, handle func(streamMessage) (bool, error)) (uint64, error) {
	conn, err := c.dialStream(ctx, kind, runID, from)
	if err != nil {
		return from, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.CloseNormalClosure {
				return from, errStreamEnded
			}
			if ctx.Err() != nil {
				return from, ctx.Err()
			}
			return from, err
		}
		var m streamMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return from, fmt.Errorf("decode stream message: %w", err)
		}
		m.raw = data
		if m.Revision != nil && m.Type != api.MessageCaughtUp {
			if *m.Revision < from {
				continue // resumed a little early: seen already
			}
			from = *m.Revision + 1
		}
		done, err := handle(m)
		if err != nil || done {
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			return from, err
		}
	}
}

// kindOf is a run's process kind, from its id.
func kindOf(runID string) string {
	if strings.HasPrefix(runID, "RTP-") {
		return "rtp"
	}
	return "ion"
}

// watchRun follows a run's stream until it ends, drawing a progress bar,
// printing step names and alerts, and at the end the run's results as a
// table (asJSON: nothing but the finished run's JSON view, for scripts).
// It returns nil when the run completes and exitError{1} when it fails or
// is cancelled.
func watchRun(ctx context.Context, c *client, kind, runID string, asJSON bool) error {
	w := &watcher{out: os.Stdout, tty: isTerminal(os.Stdout)}
	if asJSON {
		w = &watcher{out: io.Discard}
	}
	var result error
	completed := false
	var end uint64 // the log position of the run's end, as the stream showed it
	err := c.follow(ctx, kind, runID, 0, func(m streamMessage) (bool, error) {
		var d streamData
		_ = json.Unmarshal(m.Data, &d)
		if m.Position != nil {
			end = max(end, *m.Position)
		}
		switch m.Type {
		case api.MessageConnected:
			w.update(d)
		case api.MessageProgress, api.MessageTelemetry:
			w.update(d)
		case api.MessageAlert:
			if asJSON {
				return false, nil
			}
			w.println(fmt.Sprintf("ALERT %s %s: %s (%s %s)", strings.ToUpper(d.Severity), d.Parameter, d.Message, d.Source, d.Rule))
		case api.MessageCompleted:
			w.update(d)
			w.finish()
			completed = true
			return true, nil
		case api.MessageError:
			w.finish()
			fmt.Fprintln(os.Stderr, "run failed:", d.ErrorMessage)
			result = exitError{1}
			return true, nil
		case api.MessageCancelled:
			w.finish()
			fmt.Fprintln(os.Stderr, "run cancelled:", cmpOr(d.Reason, d.Message))
			result = exitError{1}
			return true, nil
		}
		return false, nil
	})
	w.finish()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	// The run's view is read once the read models have applied its end:
	// the stream sends an event as soon as it is stored, the view may
	// lag behind it (a results table without the results).
	if asJSON {
		var view json.RawMessage
		if err := c.readAfter(ctx, "/api/"+kind+"/runs/"+runID, end, &view); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		fmt.Printf("%s\n", view)
		return result
	}
	if completed {
		var view json.RawMessage
		if err := c.readAfter(ctx, "/api/"+kind+"/runs/"+runID, end, &view); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		fmt.Printf("completed: %s\n\n", runID)
		if err := printResults(os.Stdout, view); err != nil {
			return err
		}
	}
	return result
}

// watcher draws the progress of a run: a bar redrawn in place on a
// terminal, a line per change of step (or of 10 %) otherwise.
type watcher struct {
	out      io.Writer
	tty      bool
	status   string
	progress float64
	step     string
	printed  string // the last line printed
	bucket   int
	drawn    bool // a bar is on the current terminal line
}

func (w *watcher) update(d streamData) {
	if d.Status != "" {
		w.status = d.Status
	}
	if d.Progress != nil {
		w.progress = *d.Progress
	}
	stepChanged := d.CurrentStep != "" && stepName(d.CurrentStep) != stepName(w.step)
	if d.CurrentStep != "" {
		w.step = d.CurrentStep
	}
	line := fmt.Sprintf("%s %5.1f%% %-9s %s", bar(w.progress), w.progress, w.status, w.step)
	if w.tty {
		if stepChanged && w.drawn {
			fmt.Fprintln(w.out)
		}
		fmt.Fprintf(w.out, "\r\033[K%s", line)
		w.drawn = true
		return
	}
	if b := int(w.progress / 10); (stepChanged || b != w.bucket || d.Status != "" && d.Status != statusOf(w.printed)) && line != w.printed {
		fmt.Fprintln(w.out, line)
		w.printed, w.bucket = line, b
	}
}

// stepName is a step's name without its running figures: "Implanting
// (26% dose)" is the step "Implanting".
func stepName(s string) string {
	name, _, _ := strings.Cut(s, " (")
	return name
}

func statusOf(line string) string {
	f := strings.Fields(line)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

func (w *watcher) println(s string) {
	w.finish()
	fmt.Fprintln(w.out, s)
}

// finish ends a bar drawn in place.
func (w *watcher) finish() {
	if w.tty && w.drawn {
		fmt.Fprintln(w.out)
		w.drawn = false
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// replayRun prints a run's events from its stream, from revision from up
// to the caught_up that ends the replay: one line per event, or the
// stream's JSON messages with asJSON.
func replayRun(ctx context.Context, c *client, runID string, from uint64, asJSON bool) error {
	out := os.Stdout
	return c.follow(ctx, kindOf(runID), runID, from, func(m streamMessage) (bool, error) {
		if asJSON {
			_, err := fmt.Fprintf(out, "%s\n", m.raw)
			return m.Type == api.MessageCaughtUp, err
		}
		var d streamData
		_ = json.Unmarshal(m.Data, &d)
		switch m.Type {
		case api.MessageConnected:
			return false, nil
		case api.MessageCaughtUp:
			_, err := fmt.Fprintf(out, "%s caught up\n", m.Timestamp.Format(logTime))
			return true, err
		}
		_, err := fmt.Fprintf(out, "%s %-6s %-9s %-19s %s\n", m.Timestamp.Format(logTime), fmt.Sprintf("[%d]", *m.Revision),
			m.Type, m.Event, describe(m.Type, d))
		return false, err
	})
}

const logTime = "2006-01-02T15:04:05.000Z07:00"

// describe is the one-line gist of a message's data.
func describe(typ string, d streamData) string {
	var b strings.Builder
	if d.Status != "" {
		b.WriteString(d.Status)
	}
	if d.Progress != nil {
		fmt.Fprintf(&b, " %.1f%%", *d.Progress)
	}
	if d.CurrentStep != "" {
		b.WriteString(" " + d.CurrentStep)
	}
	switch typ {
	case api.MessageAlert:
		fmt.Fprintf(&b, "%s %s: %s (%s %s)", d.Severity, d.Parameter, d.Message, d.Source, d.Rule)
	case api.MessageError:
		b.WriteString(": " + d.ErrorMessage)
	case api.MessageCancelled:
		b.WriteString(": " + cmpOr(d.Reason, d.Message))
	}
	if d.Artifact != nil {
		b.WriteString(" artifact " + d.Artifact.Name)
	}
	return strings.TrimSpace(b.String())
}
