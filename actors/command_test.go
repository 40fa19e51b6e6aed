package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/spectra-fab/spectra/actors/actorspb"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// A command reply crosses nodes as protobuf: its error comes back as the
// error the actor had, whatever characters the reason holds.
func TestCommandReplyErrorRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want func(error) error // nil: the decoded error is as good as err
	}{
		{name: "no_error"},
		{name: "state_refusal", err: &run.StateError{Command: "resume", State: run.Running, Reason: "the run is not paused"}},
		{name: "reason_with_nul_and_newline",
			err: &run.StateError{Command: "cancel", State: run.Paused, Reason: "a\x00b\nc"}},
		{name: "not_found", err: fmt.Errorf("run r-1: %w", ErrNotFound), want: func(err error) error {
			if !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("errors.Is(%v, ErrNotFound) = false", err)
			}
			return nil
		}},
		{name: "unavailable", err: errors.New("store down"), want: func(err error) error {
			if !errors.Is(err, ErrUnavailable) {
				return fmt.Errorf("errors.Is(%v, ErrUnavailable) = false", err)
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &actorspb.CommandReply{RunId: "r-1"}
			setReplyError(r, tc.err)
			wire, err := proto.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var back actorspb.CommandReply
			if err := proto.Unmarshal(wire, &back); err != nil {
				t.Fatal(err)
			}
			got := errorOf(&back)
			if tc.want != nil {
				if err := tc.want(got); err != nil {
					t.Error(err)
				}
				return
			}
			var want *run.StateError
			if !errors.As(tc.err, &want) {
				if got != nil {
					t.Errorf("errorOf(setReplyError(nil)) = %v, want nil", got)
				}
				return
			}
			var se *StateError
			if !errors.As(got, &se) || *se != *want {
				t.Errorf("errorOf(setReplyError(%#v)) = %#v, want the same refusal", want, got)
			}
			if back.ErrorMessage != want.Error() {
				t.Errorf("ErrorMessage = %q, want %q (for people)", back.ErrorMessage, want.Error())
			}
		})
	}
}

// A command whose deadline has passed (a request that waited too long
// before reaching the actor layer) fails at once with
// context.DeadlineExceeded: not a wait for ever (a future with no positive
// timeout has none), not ErrUnavailable ("try later" would be wrong: the
// API answers 504 naming the run to check).
func TestCommandPastItsDeadline(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 1})
	acc := create(t, svc, `{"steps":35}`)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Millisecond))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := svc.CancelRun(ctx, RunCommand{RunID: acc.RunID, Meta: testMeta})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable) {
			t.Errorf("CancelRun past its deadline = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("CancelRun past its deadline did not return")
	}
}

// A key that names its run (CreateRun.RunID) is claimed by recording the
// run; a repetition answers that run; when another run already has the
// id (a hash collision) the key is claimed in its own stream instead and
// gets a run of its own.
func TestCreateRunWithAKeyThatNamesItsRun(t *testing.T) {
	store := memory.New()
	svc := newTestService(t, store, Config{TimeScale: 0})
	other := create(t, svc, `{"steps":3}`)
	for name, tc := range map[string]struct {
		runID        string
		wantSameID   bool
		wantClaimRec bool
	}{
		"free_id":      {runID: KeyRunID(process.KindIon, time.Now(), testMeta.OrgID, "k-free"), wantSameID: true},
		"collision_id": {runID: other.RunID, wantClaimRec: true},
	} {
		t.Run(name, func(t *testing.T) {
			key := "k-" + name
			first := create(t, svc, `{"steps":3}`, func(c *CreateRun) { c.IdempotencyKey, c.RunID = key, tc.runID })
			if got := first.RunID == tc.runID; got != tc.wantSameID || first.Existing {
				t.Fatalf("CreateRun = run %s (existing %v), want the named id %s: %v", first.RunID, first.Existing, tc.runID, tc.wantSameID)
			}
			again := create(t, svc, `{"steps":3}`, func(c *CreateRun) { c.IdempotencyKey, c.RunID = key, tc.runID })
			if again.RunID != first.RunID || !again.Existing {
				t.Errorf("repeated CreateRun = run %s (existing %v), want run %s, existing", again.RunID, again.Existing, first.RunID)
			}
			_, err := store.ReadStream(t.Context(), events.IdempotencyStream(testMeta.OrgID, key), events.Forwards, 0, 0)
			if claimed := err == nil; claimed != tc.wantClaimRec {
				t.Errorf("the key's own stream: %v, want claimed %v", err, tc.wantClaimRec)
			}
		})
	}
}
