package projections_test

import (
	"github.com/spectra-fab/spectra/events/eventstest"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

var md = events.Metadata{OrgID: "org-1", UserID: "u-1", Role: "engineer"}

func appendRun(t *testing.T, s events.Store, runID string, meta events.Metadata, ps ...events.Payload) uint64 {
	t.Helper()
	var last events.AppendResult
	for _, p := range ps {
		ev, err := events.New(p, meta)
		if err != nil {
			t.Fatal(err)
		}
		last, err = s.Append(context.Background(), events.RunStream(runID), events.ExpectAny, ev)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	return last.Position
}

func startRunner(t testing.TB, s events.Store, cps projections.Checkpoints, p projections.Projection) *projections.Runner {
	t.Helper()
	r := projections.NewRunner(s, cps, nil, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func completedRun(t *testing.T, s events.Store, runID, jobID string, meta events.Metadata) uint64 {
	return appendRun(t, s, runID, meta,
		&events.RunRequested{RunID: runID, JobID: jobID, Kind: process.KindIon, Recipe: json.RawMessage(`{"species":"P"}`), CreatedAt: time.Unix(100, 0).UTC()},
		&events.RunQueued{JobID: jobID, Queue: "ion"},
		&events.RunStarted{JobID: jobID, Seed: 7},
		&events.RunPhaseChanged{JobID: jobID, Name: "Validation", Progress: 5},
		&events.TelemetryRecorded{JobID: jobID, Samples: map[string][]float64{"time_s": {0.1, 0.2}}, Progress: 40, CurrentStep: "Implanting (33% dose)"},
		&events.SPCViolation{JobID: jobID, Alarm: process.Alarm{Source: process.SourceSPC, Rule: "WE1"}},
		&events.ArtifactStored{JobID: jobID, Name: "telemetry.json", ContentType: "application/json", Size: 10},
		&events.RunCompleted{JobID: jobID, DurationS: 0.2, Result: eventstest.JSON(map[string]any{"final_dose_atoms_cm2": 1e15})},
	)
}

func TestJobStatusFollowsTheLog(t *testing.T) {
	s := memory.New()
	jobs := projections.NewJobStatus()
	r := startRunner(t, s, nil, jobs)
	pos := completedRun(t, s, "ION-20261128-AAAAAAAA", "job-1", md)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, pos); err != nil {
		t.Fatalf("WaitFor(%d): %v", pos, err)
	}
	run, err := jobs.Run(ctx, "org-1", "ION-20261128-AAAAAAAA")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if run.Status != projections.StatusCompleted || run.E40State != projections.E40ProcessComplete || run.Progress != 100 || run.SPCAlertsCount != 1 ||
		resultOf(t, run.Result)["final_dose_atoms_cm2"] != 1e15 || len(run.Artifacts) != 1 || run.StartedAt == nil || run.CompletedAt == nil {
		t.Errorf("Run = %+v", run)
	}
	job, err := jobs.Job(ctx, "org-1", "job-1")
	if err != nil || job.Status != projections.StatusCompleted || job.JobType != projections.JobTypeIon || job.RunID != run.RunID {
		t.Errorf("Job = %+v, %v", job, err)
	}
	if _, err := jobs.Run(ctx, "org-2", run.RunID); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("Run from another org = %v, want ErrNotFound", err)
	}
	if _, err := jobs.Job(ctx, "org-2", "job-1"); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("Job from another org = %v, want ErrNotFound", err)
	}
}

func TestJobStatusListsPagesAndRetries(t *testing.T) {
	s := memory.New()
	jobs := projections.NewJobStatus()
	r := startRunner(t, s, nil, jobs)
	for i, id := range []string{"A", "B", "C"} {
		completedRun(t, s, "ION-20261128-0000000"+id, "job-"+id, md)
		_ = i
	}
	other := md
	other.OrgID = "org-2"
	completedRun(t, s, "ION-20261128-0000000D", "job-D", other)
	pos := appendRun(t, s, "ION-20261128-0000000A", md,
		&events.RunRetried{JobID: "job-A2", FromJobID: "job-A"})
	_ = r.WaitFor(t.Context(), pos)

	runs, total, _ := jobs.Runs(t.Context(), projections.RunFilter{OrgID: "org-1", Limit: 2})
	if total != 3 || len(runs) != 2 || runs[0].RunID != "ION-20261128-0000000C" {
		t.Errorf("Runs(limit 2) = %d runs of %d, first %s; want 2 of 3, newest first", len(runs), total, runs[0].RunID)
	}
	q, total, _ := jobs.Runs(t.Context(), projections.RunFilter{OrgID: "org-1", Status: projections.StatusQueued})
	if total != 1 || q[0].JobID != "job-A2" || q[0].Progress != 0 {
		t.Errorf("queued runs = %+v (total %d), want the retried run with its new job", q, total)
	}
	js, total, _ := jobs.Jobs(t.Context(), projections.JobFilter{OrgID: "org-1"})
	if total != 4 || js[0].ID != "job-A2" || js[0].Metadata["retry_of"] != "job-A" {
		t.Errorf("Jobs = %d, first %+v; want 4 with the retry first", total, js[0])
	}
	if got := jobs.Unfinished(); !cmp.Equal(got, []string{"ION-20261128-0000000A"}) {
		t.Errorf("Unfinished = %v", got)
	}
}

func TestJobStatusSnapshotRestoresTheSameModel(t *testing.T) {
	s := memory.New()
	a := projections.NewJobStatus()
	r := startRunner(t, s, nil, a)
	pos := completedRun(t, s, "ION-20261128-AAAAAAAA", "job-1", md)
	_ = r.WaitFor(t.Context(), pos)
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b := projections.NewJobStatus()
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	ra, _ := a.Run(t.Context(), "org-1", "ION-20261128-AAAAAAAA")
	rb, _ := b.Run(t.Context(), "org-1", "ION-20261128-AAAAAAAA")
	if diff := cmp.Diff(ra, rb); diff != "" {
		t.Errorf("restored run differs (-replayed +restored):\n%s", diff)
	}
}

func TestJobStatusMapsE40States(t *testing.T) {
	s := memory.New()
	jobs := projections.NewJobStatus()
	r := startRunner(t, s, nil, jobs)
	req := func(id string) events.Payload {
		return &events.RunRequested{RunID: id, JobID: "job-" + id, Kind: process.KindRTP, Recipe: json.RawMessage(`{}`)}
	}
	tests := []struct {
		name string
		evs  []events.Payload
		want string
	}{
		{"queued", []events.Payload{req("A")}, projections.E40Queued},
		{"setting up", []events.Payload{req("B"), &events.RunStarted{JobID: "job-B"},
			&events.RunPhaseChanged{JobID: "job-B", Name: "Validation", Progress: 5}}, projections.E40SettingUp},
		{"processing", []events.Payload{req("C"), &events.RunStarted{JobID: "job-C"},
			&events.TelemetryRecorded{JobID: "job-C", Progress: 30}}, projections.E40Processing},
		{"paused", []events.Payload{req("D"), &events.RunStarted{JobID: "job-D"}, &events.RunPaused{JobID: "job-D"}}, projections.E40Paused},
		{"cancelled while queued", []events.Payload{req("E"), &events.RunCancelled{JobID: "job-E"}}, projections.E40Removed},
		{"cancelled while processing", []events.Payload{req("F"), &events.RunStarted{JobID: "job-F"},
			&events.RunCancelled{JobID: "job-F"}}, projections.E40Aborted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "RTP-20261128-E40" + tt.evs[0].(*events.RunRequested).RunID + "0000"
			for _, e := range tt.evs {
				if rr, ok := e.(*events.RunRequested); ok {
					rr.RunID = id
				}
			}
			pos := appendRun(t, s, id, md, tt.evs...)
			_ = r.WaitFor(t.Context(), pos)
			run, err := jobs.Run(t.Context(), "org-1", id)
			if err != nil || run.E40State != tt.want {
				t.Errorf("E40 state = %q (%v), want %q", run.E40State, err, tt.want)
			}
			job, _ := jobs.Job(t.Context(), "org-1", run.JobID)
			if job.E40State != tt.want {
				t.Errorf("job E40 state = %q, want %q", job.E40State, tt.want)
			}
		})
	}
}

func resultOf(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return m
}

// The model reads a run's telemetry batches lazily (the newest that
// counts, when a query or the run's next event looks): the result is the
// same as reading each as it comes, whatever the batches hold: batches
// without sample times, undecodable ones, more than a queue's worth,
// runs interleaved, a retry after a cancel.
func TestJobStatusReadsTelemetryLazilyAsEagerly(t *testing.T) {
	var recs []events.Record
	revs := map[string]uint64{}
	add := func(runID string, typ string, data string) {
		recs = append(recs, events.Record{ID: fmt.Sprint(len(recs)), Stream: events.RunStream(runID), Revision: revs[runID],
			Position: uint64(len(recs) + 1), Type: events.VersionedType(typ), Time: time.Unix(int64(100+len(recs)), 0).UTC(),
			Data: json.RawMessage(data), Metadata: md})
		revs[runID]++
	}
	payload := func(runID string, p events.Payload) {
		ev, err := events.New(p, md)
		if err != nil {
			t.Fatal(err)
		}
		add(runID, p.EventType(), string(ev.Data))
	}
	batch := func(runID string, i int, times bool) {
		tm := ""
		if times {
			tm = fmt.Sprintf(`,"time_s":[%d.5,%d.9]`, i, i)
		}
		add(runID, events.TypeTelemetryRecorded, fmt.Sprintf(`{"job_id":"j","attempt":0,"first_step":%d,"samples":{"x":[1]%s},"progress":%d,"current_step":"Step %d"}`,
			10*i, tm, i, i%3))
	}
	for _, id := range []string{"A", "B"} {
		payload(id, &events.RunRequested{RunID: id, JobID: "job-" + id, Kind: process.KindIon, Recipe: json.RawMessage(`{}`), CreatedAt: time.Unix(1, 0).UTC()})
		payload(id, &events.RunStarted{JobID: "job-" + id})
	}
	for i := range 80 {
		batch("A", i, i%7 != 3)
		if i%5 == 0 {
			batch("B", i, true)
		}
	}
	batch("A", 80, false)                                      // the newest has no times
	add("A", events.TypeTelemetryRecorded, `{"progress":"x"}`) // undecodable: skipped
	add("A", events.TypeTelemetryRecorded, `{"progress":9,"samples":{"time_s":[]}}`)
	add("B", events.TypeTelemetryRecorded, `{"Progress":61,"samples":{"TIME_S":[7]}}`) // encoding/json's rules
	payload("B", &events.RunCancelled{JobID: "job-B", Reason: "test"})
	payload("B", &events.RunRetried{JobID: "job-B2", FromJobID: "job-B"})
	batch("B", 90, true)
	for i := range 3 {
		batch("A", 100+i, true)
	}
	add("A", events.TypeTelemetryRecorded, `{"progress":`) // undecodable, the last

	eager, lazy := projections.NewJobStatus(), projections.NewJobStatus()
	for i, rec := range recs {
		for _, m := range []*projections.JobStatus{eager, lazy} {
			if err := m.Apply(rec); err != nil {
				t.Fatalf("Apply(%d): %v", i, err)
			}
		}
		if _, err := eager.Snapshot(); err != nil { // reads what is unread
			t.Fatal(err)
		}
		if i == len(recs)/2 {
			if _, err := lazy.Run(t.Context(), "org-1", "A"); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, err := eager.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	got, err := lazy.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("read lazily:\n%s\nread batch by batch:\n%s", got, want)
	}
	a, err := lazy.Run(t.Context(), "org-1", "A")
	if err != nil || a.Progress != 102 || a.ProcessTimeS != 102.9 || a.Revision != revs["A"]-2 {
		t.Errorf("Run(A) = progress %v, process time %v, revision %d, %v; want 102, 102.9, %d", a.Progress, a.ProcessTimeS, a.Revision, err, revs["A"]-2)
	}
}
