package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/fab"
	"github.com/spectra-fab/spectra/projections"
)

// stalled is an actor layer and a fab service whose commands never get an
// answer: each waits for its context to end, as actors.Service's send
// does. It records the time each command had left when it arrived.
type stalled struct {
	*backend
	Fab // the methods a command route does not call stay nil

	mu   sync.Mutex
	left map[string]time.Duration // by command; -1 without a deadline
}

func (s *stalled) wait(ctx context.Context, name string) error {
	dl, ok := ctx.Deadline()
	s.mu.Lock()
	s.left[name] = -1
	if ok {
		s.left[name] = time.Until(dl)
	}
	s.mu.Unlock()
	if !ok {
		return errors.New("no deadline") // never wait for ever in a test
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s *stalled) CancelRun(ctx context.Context, _ actors.RunCommand) (actors.Accepted, error) {
	return actors.Accepted{}, s.wait(ctx, "cancel")
}
func (s *stalled) PauseRun(ctx context.Context, _ actors.RunCommand) (actors.Accepted, error) {
	return actors.Accepted{}, s.wait(ctx, "pause")
}
func (s *stalled) ResumeRun(ctx context.Context, _ actors.RunCommand) (actors.Accepted, error) {
	return actors.Accepted{}, s.wait(ctx, "resume")
}
func (s *stalled) RetryJob(ctx context.Context, _ actors.RunCommand) (actors.Accepted, error) {
	return actors.Accepted{}, s.wait(ctx, "retry")
}
func (s *stalled) CommandLot(ctx context.Context, c fab.LotCommand) (fab.LotOutcome, error) {
	return fab.LotOutcome{}, s.wait(ctx, "lot "+c.Verb)
}
func (s *stalled) CommandSchedule(ctx context.Context, c fab.ScheduleCommand) (fab.Schedule, uint64, error) {
	return fab.Schedule{}, 0, s.wait(ctx, "schedule "+c.Verb)
}

// Every command passes the request's context, bounded by the server's
// command timeout, to the actor layer; one that gets no answer in time is
// a 504 that names what to read before repeating it.
func TestCommandsCarryTheRequestDeadline(t *testing.T) {
	const timeout = 50 * time.Millisecond
	st := &stalled{backend: newBackend(), left: map[string]time.Duration{}}
	h := newHarness(t, func(c *Config, d *Deps) {
		c.CommandTimeout = timeout
		d.Commands, d.Queries, d.Fab = st, st, st
	})
	h.b = st.backend
	h.b.addRun(projections.Run{RunID: "ION-20260101-0000000A", OrgID: "org-1", Kind: "ion", Status: projections.StatusRunning})
	job := h.b.runs["ION-20260101-0000000A"].JobID
	tok := token(t, RoleAdmin, "org-1")
	tests := []struct {
		command, method, path, check string
	}{
		{"cancel", http.MethodDelete, "/api/ion/runs/ION-20260101-0000000A", "/api/ion/runs/ION-20260101-0000000A"},
		{"cancel", http.MethodPost, "/api/jobs/" + job + "/cancel", "/api/jobs/" + job},
		{"pause", http.MethodPost, "/api/jobs/" + job + "/pause", "/api/jobs/" + job},
		{"resume", http.MethodPost, "/api/jobs/" + job + "/resume", "/api/jobs/" + job},
		{"retry", http.MethodPost, "/api/jobs/" + job + "/retry", "/api/jobs/" + job},
		{"lot pause", http.MethodPost, "/api/lots/LOT-1/pause", "/api/lots/LOT-1"},
		{"lot cancel", http.MethodPost, "/api/lots/LOT-1/cancel", "/api/lots/LOT-1"},
		{"schedule pause", http.MethodPost, "/api/schedules/SCH-1/pause", "/api/schedules/SCH-1"},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.method+tc.path, "/", "_"), func(t *testing.T) {
			res := h.do(t, tc.method, tc.path, tok, "")
			st.mu.Lock()
			left, called := st.left[tc.command]
			delete(st.left, tc.command)
			st.mu.Unlock()
			if !called {
				t.Fatalf("%s %s = %d %s: the %s command was not sent", tc.method, tc.path, res.Status, res.Body, tc.command)
			}
			if left < 0 || left > timeout {
				t.Errorf("%s %s: the command had %v left, want a deadline within %v", tc.method, tc.path, left, timeout)
			}
			if res.Status != http.StatusGatewayTimeout {
				t.Fatalf("%s %s = %d %s, want 504", tc.method, tc.path, res.Status, res.Body)
			}
			d := res.Err(t)
			if d.Code != CodeTimeout || d.Check != tc.check || !strings.Contains(d.Message, tc.check) {
				t.Errorf("%s %s: error %+v, want code %s naming %s to check", tc.method, tc.path, d, CodeTimeout, tc.check)
			}
		})
	}
}
