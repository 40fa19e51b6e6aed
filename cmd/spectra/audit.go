package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spectra-fab/spectra/node"
)

// runAudit prints who did what and when, from a server's audit trail.
func runAudit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	var c client
	f := node.NewFlags(fs)
	c.register(f)
	runID := fs.String("run-id", "", "only this run")
	userID := fs.String("user-id", "", "only this user")
	typ := fs.String("type", "", "only this event type (RunCancelled, AccessDenied, …)")
	since := fs.String("since", "", "from this time (RFC 3339)")
	until := fs.String("until", "", "up to this time (RFC 3339)")
	limit := fs.Int("limit", 0, "at most this many entries (0: all)")
	if err := parseFlags(f, args); err != nil {
		return commandError("audit", err)
	}
	q := url.Values{}
	for k, v := range map[string]string{"run_id": *runID, "user_id": *userID, "type": *typ, "since": *since, "until": *until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "TIME\tUSER\tROLE\tACTION\tRUN\tJOB\tREQUEST")
	printed := 0
	for {
		var page struct {
			Entries []struct {
				Time      time.Time `json:"time"`
				UserID    string    `json:"user_id"`
				Role      string    `json:"role"`
				Action    string    `json:"action"`
				RunID     string    `json:"run_id"`
				JobID     string    `json:"job_id"`
				RequestID string    `json:"request_id"`
			} `json:"entries"`
			NextCursor string `json:"next_cursor"`
			HasMore    bool   `json:"has_more"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/audit?"+q.Encode(), nil, &page); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		for _, e := range page.Entries {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339Nano), e.UserID, e.Role, e.Action,
				e.RunID, e.JobID, e.RequestID)
			printed++
			if *limit > 0 && printed >= *limit {
				return nil
			}
		}
		if !page.HasMore || page.NextCursor == "" {
			return nil
		}
		q.Set("cursor", page.NextCursor)
	}
}
