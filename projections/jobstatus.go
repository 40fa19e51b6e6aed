package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/internal/jsonscan"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/run"
)

// JobStatus is the job-status read model: every run and job with its
// status, progress, timestamps and results, per organisation.
type JobStatus struct {
	mu   sync.RWMutex
	runs map[string]*Run
	jobs map[string]*Job
	// order lists run and job ids by creation, oldest first.
	runOrder []string
	jobOrder []string

	// unread holds, by run, the telemetry batches applied but not read
	// yet, oldest first. A batch sets every status field it touches, so
	// of a run's consecutive batches only the newest that decodes counts
	// (and, for the process time, the newest with sample times): they
	// are read when the run's next other event comes, when a query or a
	// snapshot looks, or once maxUnread have piled up. A rebuild so reads
	// about one batch in maxUnread instead of all, nine events in ten.
	unread  map[string]*unreadBatches
	dirty   map[string]struct{} // runs whose queue may be non-empty, for readers
	pending atomic.Bool         // some run has unread batches
}

// unreadBatch is a telemetry batch applied but not read yet.
type unreadBatch struct {
	data               []byte
	revision, position uint64
}

// unreadBatches are a run's unread batches, oldest first.
type unreadBatches struct{ q []unreadBatch }

// maxUnread bounds a run's unread telemetry batches.
const maxUnread = 32

var _ Projection = (*JobStatus)(nil)

// NewJobStatus returns an empty job-status model.
func NewJobStatus() *JobStatus {
	j := &JobStatus{}
	j.Reset()
	return j
}

// Name implements Projection.
func (j *JobStatus) Name() string { return "jobstatus" }

// Reset implements Projection.
func (j *JobStatus) Reset() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.runs, j.jobs, j.runOrder, j.jobOrder = map[string]*Run{}, map[string]*Job{}, nil, nil
	j.unread, j.dirty = map[string]*unreadBatches{}, map[string]struct{}{}
	j.pending.Store(false)
}

// rlock read-locks the model after reading every unread batch, so a
// reader sees all that was applied.
func (j *JobStatus) rlock() {
	if j.pending.Load() {
		j.mu.Lock()
		for id := range j.dirty {
			j.read(id, false)
		}
		clear(j.dirty)
		j.pending.Store(false)
		j.mu.Unlock()
	}
	j.mu.RLock()
}

type jobSnapshot struct {
	Runs     []*Run          `json:"runs"`
	Results  [][]byte        `json:"results"`
	Jobs     []*Job          `json:"jobs"`
	RunOrder []string        `json:"run_order"`
	JobOrder []string        `json:"job_order"`
	Extra    json.RawMessage `json:"extra,omitempty"`
}

// Snapshot implements Projection.
func (j *JobStatus) Snapshot() ([]byte, error) {
	j.rlock()
	defer j.mu.RUnlock()
	s := jobSnapshot{RunOrder: j.runOrder, JobOrder: j.jobOrder}
	for _, id := range j.runOrder {
		r := j.runs[id]
		res, err := json.Marshal(r.Result)
		if err != nil {
			return nil, err
		}
		s.Runs = append(s.Runs, r)
		s.Results = append(s.Results, res)
	}
	for _, id := range j.jobOrder {
		s.Jobs = append(s.Jobs, j.jobs[id])
	}
	return json.Marshal(s)
}

// Restore implements Projection.
func (j *JobStatus) Restore(data []byte) error {
	var s jobSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore jobstatus: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.runs, j.jobs = map[string]*Run{}, map[string]*Job{}
	j.unread, j.dirty = map[string]*unreadBatches{}, map[string]struct{}{}
	j.pending.Store(false)
	for i, r := range s.Runs {
		if i < len(s.Results) && string(s.Results[i]) != "null" {
			r.Result = json.RawMessage(s.Results[i])
		}
		j.runs[r.RunID] = r
	}
	for _, jb := range s.Jobs {
		j.jobs[jb.ID] = jb
	}
	j.runOrder, j.jobOrder = s.RunOrder, s.JobOrder
	return nil
}

func jobType(kind process.Kind) string {
	if kind == process.KindRTP {
		return JobTypeRTP
	}
	return JobTypeIon
}

func ptr[T any](v T) *T { return &v }

// Wants implements Selective: every record of run streams.
func (j *JobStatus) Wants(category, _ string) bool { return category == events.CategoryRun }

// Apply implements Projection.
func (j *JobStatus) Apply(rec events.Record) error {
	if !j.Wants(events.Category(rec.Stream), "") {
		return nil
	}
	if events.BaseType(rec.Type) == events.TypeTelemetryRecorded {
		return j.applyTelemetry(rec)
	}
	return j.applyDecoded(rec, decodedOf(rec))
}

// decodes implements decoder: every record but telemetry batches, which
// the model reads lazily and in part.
func (j *JobStatus) decodes(_, baseType string) bool { return baseType != events.TypeTelemetryRecorded }

// applyDecoded implements decoder.
func (j *JobStatus) applyDecoded(rec events.Record, d *decoded) error {
	p, err := d.p, d.err
	if err != nil {
		return nil //nolint:nilerr // types this model does not know are skipped
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	runID := events.StreamID(rec.Stream)
	j.read(runID, true)
	if e, ok := p.(*events.RunRequested); ok {
		if _, dup := j.runs[runID]; dup {
			return nil
		}
		j.runs[runID] = &Run{RunID: runID, OrgID: rec.Metadata.OrgID, Kind: string(e.Kind),
			UserID: rec.Metadata.UserID, Recipe: e.Recipe,
			ToolID: e.ToolID, Priority: e.Priority, CreatedAt: e.CreatedAt, LogsURI: logsURI(e.JobID)}
		j.runOrder = append(j.runOrder, runID)
		j.addJob(e.JobID, runID, rec, e.Kind, e.Recipe, e.CreatedAt, map[string]any{"tool_id": e.ToolID, "priority": e.Priority})
	}
	r, ok := j.runs[runID]
	if !ok {
		return nil
	}
	r.Revision, r.Position = rec.Revision, rec.Position
	job := j.jobs[r.JobID]
	r.setStatus(r.status().Next(p))
	switch e := p.(type) {
	case *events.RunStarted:
		if r.StartedAt == nil {
			r.StartedAt = ptr(rec.Time)
		}
		if job != nil {
			if job.StartedAt == nil {
				job.StartedAt = ptr(rec.Time)
			}
			job.Metadata["attempt"] = e.Attempt
			if len(e.R2R) > 0 {
				job.Metadata["r2r"] = e.R2R
			}
		}
	case *events.SPCViolation:
		r.SPCAlertsCount++
	case *events.FDCAlarm:
		r.FDCAlarmsCount++
	case *events.RunCancelled, *events.RunFailed:
		r.CompletedAt = ptr(rec.Time)
	case *events.RunRetried:
		if job != nil {
			job.Metadata["retried_by"] = e.JobID
		}
		var recipe json.RawMessage = r.Recipe
		r.StartedAt, r.CompletedAt, r.DurationSeconds = nil, nil, nil
		r.SPCAlertsCount, r.FDCAlarmsCount, r.Result, r.Artifacts = 0, 0, nil, nil
		r.ProcessTimeS, r.LogsURI = 0, logsURI(e.JobID)
		j.addJob(e.JobID, runID, rec, process.Kind(r.Kind), recipe, rec.Time, map[string]any{"retry_of": e.FromJobID, "tool_id": r.ToolID, "priority": r.Priority})
		// The new job belongs to the run's creator's organisation.
		j.jobs[e.JobID].OrgID = r.OrgID
		return nil
	case *events.ArtifactStored:
		r.Artifacts = append(r.Artifacts, Artifact{Name: e.Name, ContentType: e.ContentType, Size: e.Size,
			URI: fmt.Sprintf("/api/jobs/%s/artifacts/%s", e.JobID, e.Name)})
	case *events.RunCompleted:
		r.CompletedAt = ptr(rec.Time)
		r.Result = e.Result
		r.ProcessTimeS = e.DurationS
		if r.StartedAt != nil {
			r.DurationSeconds = ptr(rec.Time.Sub(*r.StartedAt).Seconds())
		}
	}
	if job != nil {
		j.syncJob(job, r)
	}
	return nil
}

// status is the run's status view as the model holds it.
func (r *Run) status() run.Status {
	return run.Status{State: run.State(r.Status), E40: r.E40State, JobID: r.JobID, Progress: r.Progress,
		CurrentStep: r.CurrentStep, RetryCount: r.RetryCount, Message: r.ErrorMessage}
}

// setStatus stores a status view derived with run.Status.Next: the one
// place a run's status is folded, shared with the stream and the logs.
func (r *Run) setStatus(s run.Status) {
	r.Status, r.E40State, r.JobID, r.Progress = string(s.State), s.E40, s.JobID, s.Progress
	r.CurrentStep, r.RetryCount, r.ErrorMessage = s.CurrentStep, s.RetryCount, s.Message
}

// telemetryProgress is what the job-status model reads of a telemetry
// batch: most of the log, so it skips the other samples rather than decode
// them (it halves the cost of a rebuild).
type telemetryProgress struct {
	Progress    float64 `json:"progress"`
	CurrentStep string  `json:"current_step"`
	Samples     struct {
		TimeS []float64 `json:"time_s"`
	} `json:"samples"`
}

// telemetryFields is what scanTelemetry reads of a batch: its progress,
// current step (raw: the model keeps the run's string when it is the
// same) and the last of its sample times.
type telemetryFields struct {
	progress float64
	step     []byte
	lastTime float64
	times    bool // the batch has sample times
}

// scanTelemetry reads a telemetry batch without reflection when it has the
// form json.Marshal writes, skipping (and checking) what the model does
// not use; false for any other form, which encoding/json then decodes.
// Both give the same (TestScanTelemetryMatchesEncodingJSON).
func scanTelemetry(data []byte, f *telemetryFields) bool {
	s := jsonscan.New(data)
	var seen jsonscan.Seen
	once := seen.First
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "progress":
			v, ok := s.Float()
			f.progress = v
			return ok && once(1)
		case "current_step":
			v, ok := s.Plain()
			f.step = v
			return ok && once(2)
		case "samples":
			return once(4) && s.Object(func(name []byte) bool {
				if string(name) != "time_s" {
					if bytes.EqualFold(name, []byte("time_s")) {
						return false // encoding/json would take it for time_s
					}
					return s.Skip()
				}
				if !once(8) {
					return false
				}
				f.times = false
				return s.Array(func() bool {
					// Every time is checked (encoding/json refuses the
					// batch for one out of range); the last is kept.
					lit, ok := s.Number()
					if !ok || bytes.ContainsAny(lit, "eE") || len(lit) > 300 {
						// Only an exponent or 309 digits can leave a
						// float64's range: let encoding/json judge.
						return false
					}
					f.lastTime, _ = strconv.ParseFloat(string(lit), 64)
					f.times = true
					return true
				})
			})
		case "job_id", "attempt", "first_step":
			return s.Skip()
		default:
			// Another name, or one encoding/json would match without
			// regard to case: its rules apply.
			return false
		}
	}) && s.End()
}

// telemetryOf reads what the model uses of a telemetry batch; false
// when it does not decode (the batch is then skipped, like an unknown
// type).
func telemetryOf(data []byte) (telemetryFields, bool) {
	var f telemetryFields
	if scanTelemetry(data, &f) {
		return f, true
	}
	var e telemetryProgress
	if err := json.Unmarshal(data, &e); err != nil {
		return telemetryFields{}, false
	}
	f = telemetryFields{progress: e.Progress, step: []byte(e.CurrentStep), times: len(e.Samples.TimeS) > 0}
	if f.times {
		f.lastTime = e.Samples.TimeS[len(e.Samples.TimeS)-1]
	}
	return f, true
}

// applyTelemetry keeps a run's batch unread (see JobStatus.unread).
func (j *JobStatus) applyTelemetry(rec events.Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	id := events.StreamID(rec.Stream)
	u := j.unread[id]
	if u == nil {
		if _, ok := j.runs[id]; !ok {
			return nil
		}
		u = &unreadBatches{q: make([]unreadBatch, 0, maxUnread)}
		j.unread[id] = u
	}
	u.q = append(u.q, unreadBatch{data: rec.Data, revision: rec.Revision, position: rec.Position})
	if len(u.q) == 1 {
		j.dirty[id] = struct{}{}
	}
	if len(u.q) == maxUnread {
		j.read(id, false)
	} else {
		j.pending.Store(true)
	}
	return nil
}

// read folds run id's unread batches into the model, as applying each in
// turn would: the newest that decodes sets the status, revision and
// position, the newest that has sample times the process time. drop
// forgets the run's queue (its telemetry has likely ended); else it is
// kept for the next batches. Call with mu held.
func (j *JobStatus) read(id string, drop bool) {
	u, ok := j.unread[id]
	if !ok {
		return
	}
	q := u.q
	if drop {
		delete(j.unread, id)
	} else {
		u.q = q[:0]
	}
	r := j.runs[id]
	status := false
	for i := len(q) - 1; i >= 0; i-- {
		f, ok := telemetryOf(q[i].data)
		if !ok {
			continue
		}
		if !status {
			status = true
			r.Revision, r.Position = q[i].revision, q[i].position
			step := r.CurrentStep
			if string(f.step) != step {
				step = string(f.step)
			}
			r.setStatus(r.status().Next(&events.TelemetryRecorded{Progress: f.progress, CurrentStep: step}))
		}
		if f.times {
			r.ProcessTimeS = f.lastTime
			break
		}
	}
	if !status {
		return
	}
	if job := j.jobs[r.JobID]; job != nil {
		job.Status, job.Progress, job.CurrentStep, job.E40State = r.Status, r.Progress, r.CurrentStep, r.E40State
	}
}

func logsURI(jobID string) string { return "/api/jobs/" + jobID + "/logs" }

func (j *JobStatus) addJob(id, runID string, rec events.Record, kind process.Kind, recipe json.RawMessage, created time.Time, md map[string]any) {
	if _, dup := j.jobs[id]; dup {
		return
	}
	j.jobs[id] = &Job{ID: id, RunID: runID, OrgID: rec.Metadata.OrgID, JobType: jobType(kind), UserID: rec.Metadata.UserID,
		Status: StatusQueued, E40State: E40Queued, CurrentStep: "Queued", RecipeData: recipe, CreatedAt: created, LogsURI: logsURI(id),
		Artifacts: []Artifact{}, Metadata: md}
	j.jobOrder = append(j.jobOrder, id)
}

// syncJob copies the run's state of its current job onto the job.
func (j *JobStatus) syncJob(job *Job, r *Run) {
	job.Status, job.Progress, job.CurrentStep, job.E40State = r.Status, r.Progress, r.CurrentStep, r.E40State
	job.CompletedAt, job.ErrorMessage, job.RetryCount = r.CompletedAt, r.ErrorMessage, r.RetryCount
	job.Artifacts = slices.Clone(r.Artifacts)
	if job.Artifacts == nil {
		job.Artifacts = []Artifact{}
	}
	if len(r.Result) > 0 {
		job.Metadata["result"] = r.Result
	}
	job.Metadata["spc_alerts_count"] = r.SPCAlertsCount
}

func copyRun(r *Run) Run {
	c := *r
	c.Artifacts = slices.Clone(r.Artifacts)
	if c.Artifacts == nil {
		c.Artifacts = []Artifact{}
	}
	return c
}

func copyJob(jb *Job) Job {
	c := *jb
	c.Artifacts = slices.Clone(jb.Artifacts)
	md := make(map[string]any, len(jb.Metadata))
	for k, v := range jb.Metadata {
		md[k] = v
	}
	c.Metadata = md
	return c
}

// Run returns a run of the organisation; ErrNotFound when there is no such
// run in it.
func (j *JobStatus) Run(_ context.Context, orgID, runID string) (Run, error) {
	j.rlock()
	defer j.mu.RUnlock()
	r, ok := j.runs[runID]
	if !ok || r.OrgID != orgID {
		return Run{}, ErrNotFound
	}
	return copyRun(r), nil
}

// Runs lists the organisation's runs, newest first, and the total that
// matched before paging (the cursor, f.Before, included).
func (j *JobStatus) Runs(_ context.Context, f RunFilter) ([]Run, int, error) {
	j.rlock()
	defer j.mu.RUnlock()
	var out []Run
	total := 0
	skipped := 0 // of the offset, among the runs before the cursor
	for i := len(j.runOrder) - 1; i >= 0; i-- {
		r := j.runs[j.runOrder[i]]
		if r.OrgID != f.OrgID || (f.Kind != "" && r.Kind != f.Kind) || (f.Status != "" && r.Status != f.Status) ||
			(f.ToolID != "" && r.ToolID != f.ToolID) || (f.LotID != "" && !inLot(r.Recipe, f.LotID)) {
			continue
		}
		total++
		if f.Before > 0 && i+1 >= f.Before {
			continue
		}
		if skipped < f.Offset {
			skipped++
			continue
		}
		if f.Limit <= 0 || len(out) < f.Limit {
			c := copyRun(r)
			c.Seq = i + 1
			out = append(out, c)
		}
	}
	if out == nil {
		out = []Run{}
	}
	return out, total, nil
}

// inLot reports whether a run's recipe names lot (its lot_id). Most runs
// do not even contain the name: only those are decoded.
func inLot(recipe json.RawMessage, lot string) bool {
	if !bytes.Contains(recipe, []byte(lot)) {
		return false
	}
	var r struct {
		LotID string `json:"lot_id"`
	}
	return json.Unmarshal(recipe, &r) == nil && r.LotID == lot
}

// Job returns a job of the organisation; ErrNotFound when there is none.
func (j *JobStatus) Job(_ context.Context, orgID, jobID string) (Job, error) {
	j.rlock()
	defer j.mu.RUnlock()
	jb, ok := j.jobs[jobID]
	if !ok || jb.OrgID != orgID {
		return Job{}, ErrNotFound
	}
	return copyJob(jb), nil
}

// Jobs lists the organisation's jobs, newest first, and the total that
// matched before paging.
func (j *JobStatus) Jobs(_ context.Context, f JobFilter) ([]Job, int, error) {
	j.rlock()
	defer j.mu.RUnlock()
	var out []Job
	total := 0
	for i := len(j.jobOrder) - 1; i >= 0; i-- {
		jb := j.jobs[j.jobOrder[i]]
		if jb.OrgID != f.OrgID || (f.JobType != "" && jb.JobType != f.JobType) || (f.Status != "" && jb.Status != f.Status) {
			continue
		}
		if total >= f.Offset && (f.Limit <= 0 || len(out) < f.Limit) {
			out = append(out, copyJob(jb))
		}
		total++
	}
	if out == nil {
		out = []Job{}
	}
	return out, total, nil
}

// Unfinished lists the ids of every run that is not in a final state: the
// runs a restarted node must wake.
func (j *JobStatus) Unfinished() []string {
	j.rlock()
	defer j.mu.RUnlock()
	var ids []string
	for _, id := range j.runOrder {
		if !Terminal(j.runs[id].Status) {
			ids = append(ids, id)
		}
	}
	return ids
}
