package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spectra-fab/spectra/node"
)

// jobKinds maps the CLI's kinds onto the API's job types.
var jobKinds = map[string]string{"ion": "ion_implant", "rtp": "rtp"}

// runStates are the states `spectra runs --state` filters on.
const runStates = "queued, running, paused, completed, failed, cancelled or retrying"

// runsJob is a job as GET /api/jobs lists it, the fields the CLI shows.
type runsJob struct {
	ID          string    `json:"id"`
	RunID       string    `json:"run_id"`
	JobType     string    `json:"job_type"`
	Status      string    `json:"status"`
	Progress    float64   `json:"progress"`
	CurrentStep string    `json:"current_step"`
	UserID      string    `json:"user_id"`
	CreatedAt   time.Time `json:"created_at"`
	RetryCount  int       `json:"retry_count"`
}

// runRuns: spectra runs [--state S] [--kind K] [--limit N] [--json].
func runRuns(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("runs", flag.ContinueOnError)
	var c client
	f := node.NewFlags(fs)
	c.register(f)
	state := fs.String("state", "", "only runs in this state: "+runStates)
	kind := fs.String("kind", "", "only runs of this kind: ion or rtp")
	limit := fs.Int("limit", 20, "at most this many runs, newest first (at most 100)")
	asJSON := fs.Bool("json", false, "print the server's JSON")
	if err := parseFlags(f, args); err != nil {
		return commandError("runs", err)
	}
	q := url.Values{"page_size": {strconv.Itoa(*limit)}}
	if *state != "" {
		q.Set("status", *state)
	}
	if *kind != "" {
		t, ok := jobKinds[*kind]
		if !ok {
			return fmt.Errorf("runs: --kind must be ion or rtp, not %q", *kind)
		}
		q.Set("job_type", t)
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/api/jobs?"+q.Encode(), nil, &raw); err != nil {
		return fmt.Errorf("runs: %w", err)
	}
	if *asJSON {
		fmt.Printf("%s\n", raw)
		return nil
	}
	var page struct {
		Jobs  []runsJob `json:"jobs"`
		Total int       `json:"total"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return fmt.Errorf("runs: %w", err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tJOB\tSTATE\tPROGRESS\tSTEP\tCREATED\tBY")
	for _, j := range page.Jobs {
		state := j.Status
		if j.RetryCount > 0 {
			state += fmt.Sprintf(" (retry %d)", j.RetryCount)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f%%\t%s\t%s\t%s\n", j.RunID, j.ID, state, j.Progress, j.CurrentStep,
			j.CreatedAt.Local().Format("2006-01-02 15:04:05"), j.UserID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Total > len(page.Jobs) {
		fmt.Printf("(%d of %d; --limit for more)\n", len(page.Jobs), page.Total)
	}
	return nil
}

// jobOf resolves a command line's JOB argument: a job id, or a run id
// (ION-…, RTP-…) looked up on the server.
func (c *client) jobOf(ctx context.Context, arg string) (string, error) {
	if !strings.HasPrefix(arg, "ION-") && !strings.HasPrefix(arg, "RTP-") {
		return arg, nil
	}
	var run struct {
		JobID string `json:"job_id"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/"+kindOf(arg)+"/runs/"+url.PathEscape(arg), nil, &run); err != nil {
		return "", err
	}
	return run.JobID, nil
}

// runLogs: spectra logs JOB [--json].
func runLogs(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	var c client
	f := node.NewFlags(fs)
	c.register(f)
	asJSON := fs.Bool("json", false, "one JSON object a line (time, revision, type, message, user, data)")
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, "usage: spectra logs JOB|RUN_ID [--json] [--server URL]")
		return exitError{2}
	}
	if err := parseFlags(f, args[1:]); err != nil {
		return commandError("logs", err)
	}
	job, err := c.jobOf(ctx, args[0])
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	accept := "text/plain"
	if *asJSON {
		accept = "application/x-ndjson"
	}
	var raw json.RawMessage
	if err := c.doAccept(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(job)+"/logs", accept, &raw); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	_, err = os.Stdout.Write(raw)
	return err
}

// jobCommands are the commands on a job the CLI sends, with what each
// says when the server accepts it.
var jobCommands = map[string]string{"cancel": "cancelled", "pause": "paused", "resume": "resumed", "retry": "retried"}

// runJobCommand: spectra cancel|pause|resume|retry JOB [--reason TEXT].
func runJobCommand(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var c client
	f := node.NewFlags(fs)
	c.register(f)
	reason := fs.String("reason", "", "why, for the audit trail")
	asJSON := fs.Bool("json", false, "print the server's JSON answer")
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(os.Stderr, "usage: spectra %s JOB|RUN_ID [--reason TEXT] [--server URL]\n", cmd)
		return exitError{2}
	}
	if err := parseFlags(f, args[1:]); err != nil {
		return commandError(cmd, err)
	}
	job, err := c.jobOf(ctx, args[0])
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	var body []byte
	if *reason != "" {
		body, _ = json.Marshal(map[string]string{"reason": *reason})
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPost, "/api/jobs/"+url.PathEscape(job)+"/"+cmd, body, &raw); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if *asJSON {
		fmt.Printf("%s\n", raw)
		return nil
	}
	var answer struct {
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	_ = json.Unmarshal(raw, &answer)
	fmt.Printf("%s: %s\n", job, cmpOr(answer.Message, jobCommands[cmd]))
	return nil
}
