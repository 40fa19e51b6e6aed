// Package bidi drives a browser over WebDriver BiDi (the W3C protocol
// Firefox speaks natively, so no geckodriver is needed): launch, open a
// tab, navigate, evaluate JavaScript, watch the console and take
// screenshots. It holds what the dashboard's browser test needs and no
// more.
//
//	b, err := bidi.LaunchFirefox(ctx, path, profileDir)
//	defer b.Close()
//	tab, err := b.NewTab(ctx)
//	err = tab.Navigate(ctx, "http://127.0.0.1:8003/")
//	var title string
//	err = tab.Eval(ctx, `document.title`, &title)
package bidi

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// Firefox returns the path of an installed Firefox ("" when none is).
func Firefox() string {
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Error is an error a command answered with (a BiDi error code such as
// "no such frame", and its message).
type Error struct {
	Method  string `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Method + ": " + e.Code + ": " + e.Message }

// LogEntry is a log.entryAdded event: a console call (Type "console") or
// an uncaught error (Type "javascript").
type LogEntry struct {
	Type   string `json:"type"`
	Level  string `json:"level"` // "debug", "info", "warn" or "error"
	Text   string `json:"text"`
	Method string `json:"method"` // console.<method>
	Source struct {
		Context string `json:"context"`
	} `json:"source"`
}

// Browser is a browser process and its one BiDi session.
type Browser struct {
	cmd  *exec.Cmd
	conn *websocket.Conn
	out  *stderrTail

	writeMu sync.Mutex // one writer at a time on conn

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan reply
	onLog   []func(LogEntry)
	readErr error
	done    chan struct{} // closed when the reader ends
	exited  chan struct{} // closed when the process has been waited for
}

type reply struct {
	Type   string          `json:"type"` // "success", "error" or "event"
	ID     *int64          `json:"id"`
	Method string          `json:"method"` // events
	Params json.RawMessage `json:"params"` // events
	Result json.RawMessage `json:"result"`
	Error
}

var listening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// LaunchFirefox starts a headless Firefox on a fresh profile in
// profileDir (which it fills; the caller removes it), connects to its
// BiDi endpoint and starts a session. ctx bounds the start only.
func LaunchFirefox(ctx context.Context, path, profileDir string) (*Browser, error) {
	// Quiet, self-contained, and no first-run pages; the remote agent
	// applies its own recommended automation preferences on top.
	prefs := []string{
		`user_pref("browser.shell.checkDefaultBrowser", false);`,
		`user_pref("datareporting.policy.dataSubmissionEnabled", false);`,
		`user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);`,
		`user_pref("browser.startup.homepage_override.mstone", "ignore");`,
		`user_pref("app.update.disabledForTesting", true);`,
		`user_pref("network.captive-portal-service.enabled", false);`,
		`user_pref("network.connectivity-service.enabled", false);`,
	}
	if err := os.WriteFile(filepath.Join(profileDir, "user.js"), []byte(strings.Join(prefs, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "--headless", "--no-remote", "--profile", profileDir, "--remote-debugging-port", "0", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "HOME="+profileDir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	b := &Browser{cmd: cmd, out: &stderrTail{}, pending: map[int64]chan reply{}, done: make(chan struct{}), exited: make(chan struct{})}
	// The browser prints where it listens on stderr; the rest of stderr is
	// kept (its tail) for errors. The scanner ends when the process does.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			b.out.add(line)
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(b.exited)
	}()
	var url string
	select {
	case url = <-addr:
	case <-b.exited:
		return nil, fmt.Errorf("firefox exited before listening: %s", b.out)
	case <-ctx.Done():
		b.kill()
		return nil, fmt.Errorf("firefox did not start listening: %w; stderr: %s", ctx.Err(), b.out)
	}
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, url+"/session", nil)
	if err != nil {
		b.kill()
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	b.conn = conn
	go b.read()
	if err := b.Call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}, nil); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.Call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// read hands each message to the call waiting for it or to the event
// listeners, until the connection ends.
func (b *Browser) read() {
	defer close(b.done)
	for {
		_, data, err := b.conn.ReadMessage()
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var r reply
		if json.Unmarshal(data, &r) != nil {
			continue
		}
		b.mu.Lock()
		if r.Type == "event" {
			fs := b.onLog
			b.mu.Unlock()
			if r.Method == "log.entryAdded" {
				var e LogEntry
				if json.Unmarshal(r.Params, &e) == nil {
					for _, f := range fs {
						f(e)
					}
				}
			}
			continue
		}
		if r.ID != nil {
			if ch, ok := b.pending[*r.ID]; ok {
				delete(b.pending, *r.ID)
				ch <- r
			}
		}
		b.mu.Unlock()
	}
}

// OnLog calls f with every console entry and uncaught error of every tab,
// on the reader's goroutine (f must not call the browser).
func (b *Browser) OnLog(f func(LogEntry)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onLog = append(b.onLog, f)
}

// Call sends one command and decodes its result into result (nil: ignore
// it). A command the browser refuses is an *Error.
func (b *Browser) Call(ctx context.Context, method string, params, result any) error {
	if params == nil {
		params = map[string]any{}
	}
	ch := make(chan reply, 1)
	b.mu.Lock()
	if b.readErr != nil {
		err := b.readErr
		b.mu.Unlock()
		return fmt.Errorf("%s: connection closed: %w", method, err)
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return err
	}
	b.writeMu.Lock()
	err = b.conn.WriteMessage(websocket.TextMessage, msg)
	b.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: connection closed", method)
		}
		if r.Type == "error" {
			e := r.Error
			e.Method = method
			return &e
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(r.Result, result)
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Close ends the session, closes the browser and waits for its process
// (killing it if it lingers).
func (b *Browser) Close() {
	if b.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.Call(ctx, "browser.close", nil, nil)
		cancel()
		_ = b.conn.Close()
		<-b.done
	}
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		b.kill()
	}
}

func (b *Browser) kill() {
	_ = b.cmd.Process.Kill()
	<-b.exited
}

// Tab is one top-level browsing context.
type Tab struct {
	b       *Browser
	Context string
}

// NewTab opens a tab.
func (b *Browser) NewTab(ctx context.Context) (*Tab, error) {
	var r struct {
		Context string `json:"context"`
	}
	if err := b.Call(ctx, "browsingContext.create", map[string]any{"type": "tab"}, &r); err != nil {
		return nil, err
	}
	return &Tab{b: b, Context: r.Context}, nil
}

// Close closes the tab.
func (t *Tab) Close(ctx context.Context) error {
	return t.b.Call(ctx, "browsingContext.close", map[string]any{"context": t.Context}, nil)
}

// SetViewport sizes the tab's viewport in CSS pixels.
func (t *Tab) SetViewport(ctx context.Context, width, height int) error {
	return t.b.Call(ctx, "browsingContext.setViewport", map[string]any{"context": t.Context,
		"viewport": map[string]int{"width": width, "height": height}}, nil)
}

// Navigate loads url and waits for the page's load event.
func (t *Tab) Navigate(ctx context.Context, url string) error {
	return t.b.Call(ctx, "browsingContext.navigate", map[string]any{"context": t.Context, "url": url, "wait": "complete"}, nil)
}

// Eval evaluates a JavaScript expression in the tab (a promise is
// awaited) and decodes its JSON form into out (nil: ignore it). An
// exception thrown is an error with its message.
func (t *Tab) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Type   string `json:"type"` // "success" or "exception"
		Result struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	// The value comes back as JSON text: BiDi's own serialisation of
	// objects (lists of key, value pairs) is more than a test needs.
	src := "(async () => JSON.stringify(await (" + expr + "\n)))()"
	if err := t.b.Call(ctx, "script.evaluate", map[string]any{"expression": src, "target": map[string]string{"context": t.Context},
		"awaitPromise": true, "resultOwnership": "none"}, &r); err != nil {
		return err
	}
	if r.Type == "exception" {
		return fmt.Errorf("%s: %s", firstLine(expr), r.ExceptionDetails.Text)
	}
	s, ok := r.Result.Value.(string)
	if !ok { // undefined, a function: nothing JSON can hold
		return nil
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal([]byte(s), out)
}

// Screenshot captures the whole document as PNG.
func (t *Tab) Screenshot(ctx context.Context) ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := t.b.Call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": t.Context, "origin": "document"}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// Wait polls a JavaScript expression until it is truthy, or within passes.
func (t *Tab) Wait(ctx context.Context, expr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for {
		var ok bool
		err := t.Eval(ctx, "!!("+expr+"\n)", &ok)
		if err == nil && ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("wait %s for %s: not yet (last error: %v)", within, firstLine(expr), last)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// stderrTail keeps the last lines a process wrote, for error messages.
type stderrTail struct {
	mu    sync.Mutex
	lines []string
}

func (s *stderrTail) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	if len(s.lines) > 20 {
		s.lines = s.lines[1:]
	}
}

func (s *stderrTail) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}
