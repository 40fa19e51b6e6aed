package run_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// TestVerifyUsesRecordedPolicy: a run records the retry and time-limit
// policy it runs under, and verify re-derives it under that policy, not
// the verifying node's; a recovered host keeps it too. Changing the
// recorded policy makes verify diverge where it matters; a log that
// records none verifies under the assumed (documented) policy.
func TestVerifyUsesRecordedPolicy(t *testing.T) {
	const id = "ION-POLICY"
	// 60 steps of 100 ms: past the 5 s soft limit; a transient fault at
	// half way retries once (policy allows 2).
	h := newHost(t, id, policy, testEngine, request(id, process.KindIon, `{"steps":60}`, 7,
		&process.Fault{Kind: process.FaultTransient, AtProgress: 50}))
	h.start()
	h.runOut()
	if h.r.State() != run.Retrying {
		t.Fatalf("state after the fault = %s, want retrying", h.r.State())
	}
	h.start()
	h.runTo(20)
	h.policy = run.DefaultPolicy // the node's configuration changes; the host crashes
	h.crash()
	h.runOut()
	if h.r.State() != run.Completed {
		t.Fatalf("state = %s, want completed", h.r.State())
	}
	at := map[string]int{}
	for i, rec := range h.recs {
		if _, ok := at[events.BaseType(rec.Type)]; !ok {
			at[events.BaseType(rec.Type)] = i
		}
	}
	if _, ok := at[events.TypeRunTimeLimitWarning]; !ok {
		t.Fatalf("no soft-limit warning after the host's policy changed: the recovered run forgot its recorded policy\n%s", dump(h.recs))
	}
	var started events.RunStarted
	if err := json.Unmarshal(h.recs[at[events.TypeRunStarted]].Data, &started); err != nil || started.Policy == nil {
		t.Fatalf("RunStarted records no policy: %s", h.recs[at[events.TypeRunStarted]].Data)
	}
	if got := run.PolicyOf(*started.Policy); got != policy {
		t.Fatalf("recorded policy = %+v, want %+v", got, policy)
	}

	// The verifying node's policy changed after the fact: no divergence.
	for _, node := range []run.Policy{policy, run.DefaultPolicy, {MaxRetries: 0, SoftLimit: time.Hour, HardLimit: time.Second}} {
		rep := run.Verify(id, h.recs, testEngine, node, "test-model", nil)
		if !rep.Identical || !rep.Policy.Recorded || run.PolicyOf(rep.Policy.RunPolicy) != policy {
			t.Errorf("Verify under node policy %+v = identical %v, policy %+v; divergence %s", node, rep.Identical, rep.Policy, show(rep.Divergence))
		}
	}

	// The recorded policy changed: the replay diverges at the first event
	// the change affects.
	edit := func(recs []events.Record, f func(e *events.RunStarted)) []events.Record {
		out := append([]events.Record(nil), recs...)
		for i, rec := range out {
			if events.BaseType(rec.Type) != events.TypeRunStarted {
				continue
			}
			var e events.RunStarted
			if err := json.Unmarshal(rec.Data, &e); err != nil {
				t.Fatal(err)
			}
			f(&e)
			out[i].Data, _ = json.Marshal(e)
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		edit  func(e *events.RunStarted)
		first string // the recorded event the replay disagrees with (or after events past it)
		after int
	}{
		{"no retries", func(e *events.RunStarted) { e.Policy.MaxRetries = 0 }, events.TypeRunRetryScheduled, 0},
		{"longer soft limit", func(e *events.RunStarted) { e.Policy.SoftLimitS = 60 }, events.TypeRunTimeLimitWarning, 0},
		// the second after the warning (5–6 s) fails at 5.5 s
		{"shorter hard limit", func(e *events.RunStarted) { e.Policy.HardLimitS = 5.5 }, events.TypeRunTimeLimitWarning, 1},
	} {
		rep := run.Verify(id, edit(h.recs, tt.edit), testEngine, policy, "test-model", nil)
		want := uint64(at[tt.first] + tt.after)
		if rep.Identical || rep.Divergence == nil || rep.Divergence.Revision != want {
			t.Errorf("%s: Verify = identical %v, divergence %s; want one at revision %d", tt.name, rep.Identical, show(rep.Divergence), want)
		}
	}

	// An older log records no policy: it verifies under the assumed one,
	// and only under the one it ran with.
	old := edit(h.recs, func(e *events.RunStarted) { e.Policy = nil })
	if rep := run.Verify(id, old, testEngine, policy, "test-model", nil); !rep.Identical || rep.Policy.Recorded {
		t.Errorf("Verify(old log, its policy) = identical %v, policy %+v; divergence %s", rep.Identical, rep.Policy, show(rep.Divergence))
	}
	if rep := run.Verify(id, old, testEngine, run.DefaultPolicy, "test-model", nil); rep.Identical {
		t.Errorf("Verify(old log, another policy) = identical; want a divergence at the soft-limit warning")
	} else if got := rep.Divergence.Revision; got != uint64(at[events.TypeRunTimeLimitWarning]) {
		t.Errorf("Verify(old log, another policy) diverges at %d, want %d (%s)", got, at[events.TypeRunTimeLimitWarning], fmt.Sprint(rep.Divergence.Reason))
	}
}
