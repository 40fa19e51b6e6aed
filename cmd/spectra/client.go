package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/node"
)

// client talks to a running server.
type client struct {
	base  string
	token string
	http  *http.Client
}

func (c *client) register(f *node.Flags) {
	f.String(&c.base, "server", "SPECTRA_SERVER", "http://127.0.0.1:8003", "server URL")
	f.String(&c.token, "token", "SPECTRA_TOKEN", "", "access token")
	c.http = &http.Client{Timeout: 30 * time.Second}
}

// apiError is the server's error body.
type apiError struct {
	Status int
	Body   struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Fields  []struct {
				Field   string `json:"field"`
				Value   any    `json:"value"`
				Allowed string `json:"allowed"`
				Message string `json:"message"`
			} `json:"fields"`
		} `json:"error"`
	}
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.Status, e.Body.Error.Code, e.Body.Error.Message)
	for _, f := range e.Body.Error.Fields {
		fmt.Fprintf(&b, "\n  %s = %v: %s (allowed %s)", f.Field, f.Value, f.Message, f.Allowed)
	}
	return b.String()
}

func (c *client) do(ctx context.Context, method, path string, body []byte, out any) error {
	return c.request(ctx, method, path, "application/json", body, out)
}

// doAccept asks for path as the media type accept.
func (c *client) doAccept(ctx context.Context, method, path, accept string, out any) error {
	return c.request(ctx, method, path, accept, nil, out)
}

// readAfter reads path once the server's read models have reached the
// log position pos (read-your-writes: X-Min-Position), e.g. a run's view
// after its stream showed the run's end at pos.
func (c *client) readAfter(ctx context.Context, path string, pos uint64, out any) error {
	return c.requestWith(ctx, http.MethodGet, path, "application/json", nil, out, func(h http.Header) {
		h.Set(api.HeaderMinPosition, strconv.FormatUint(pos, 10))
	})
}

func (c *client) request(ctx context.Context, method, path, accept string, body []byte, out any) error {
	return c.requestWith(ctx, method, path, accept, body, out, nil)
}

func (c *client) requestWith(ctx context.Context, method, path, accept string, body []byte, out any, header func(http.Header)) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	if header != nil {
		header(req.Header)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.Body) != nil || e.Body.Error.Code == "" {
			e.Body.Error.Message = strings.TrimSpace(string(data))
		}
		return e
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

func runSubmit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	var c client
	f := node.NewFlags(fs)
	c.register(f)
	watch := fs.Bool("watch", false, "follow the run until it ends, then print its results; exit non-zero unless it completes")
	asJSON := fs.Bool("json", false, "print JSON only: the server's answer, or with --watch the finished run")
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: spectra submit ion|rtp RECIPE.json [--watch] [--server URL]")
		return exitError{2}
	}
	kind, file := args[0], args[1]
	if err := parseFlags(f, args[2:]); err != nil {
		return commandError("submit", err)
	}
	if kind != "ion" && kind != "rtp" {
		return fmt.Errorf("submit: kind must be ion or rtp, not %q", kind)
	}
	recipe, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	var created struct {
		RunID   string `json:"run_id"`
		JobID   string `json:"job_id"`
		Message string `json:"message"`
	}
	var answer json.RawMessage
	if err := c.do(ctx, http.MethodPost, "/api/"+kind+"/runs", recipe, &answer); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	if err := json.Unmarshal(answer, &created); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	if !*asJSON {
		fmt.Printf("%s (job %s): %s\n", created.RunID, created.JobID, created.Message)
	}
	if !*watch {
		if *asJSON {
			fmt.Printf("%s\n", answer)
		}
		return nil
	}
	return watchRun(ctx, &c, kind, created.RunID, *asJSON)
}

func bar(p float64) string {
	n := int(p / 5)
	n = max(0, min(20, n))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", 20-n) + "]"
}

// runReplay prints a run's events, replayed from its WebSocket stream up
// to caught_up (see replayRun).
func runReplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	var c client
	f := node.NewFlags(fs)
	c.register(f)
	from := fs.Uint64("from", 0, "first revision to print")
	asJSON := fs.Bool("json", false, "print the stream's JSON messages, one a line")
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: spectra replay RUN_ID [--from REVISION] [--json] [--server URL]")
		return exitError{2}
	}
	runID := args[0]
	if err := parseFlags(f, args[1:]); err != nil {
		return commandError("replay", err)
	}
	if err := replayRun(ctx, &c, runID, *from, *asJSON); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}
