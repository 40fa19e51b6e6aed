package projections

import "context"

// JobQueries answers the API's run and job queries from the job-status
// model, and its read-your-writes waits from the runner that feeds it.
type JobQueries struct {
	Model  *JobStatus
	Runner *Runner
}

// Run returns a run of the organisation (ErrNotFound when none).
func (q JobQueries) Run(ctx context.Context, orgID, runID string) (Run, error) {
	return q.Model.Run(ctx, orgID, runID)
}

// Runs lists the organisation's runs.
func (q JobQueries) Runs(ctx context.Context, f RunFilter) ([]Run, int, error) {
	return q.Model.Runs(ctx, f)
}

// Job returns a job of the organisation (ErrNotFound when none).
func (q JobQueries) Job(ctx context.Context, orgID, jobID string) (Job, error) {
	return q.Model.Job(ctx, orgID, jobID)
}

// Jobs lists the organisation's jobs.
func (q JobQueries) Jobs(ctx context.Context, f JobFilter) ([]Job, int, error) {
	return q.Model.Jobs(ctx, f)
}

// WaitFor blocks until the read models have applied position.
func (q JobQueries) WaitFor(ctx context.Context, position uint64) error {
	return q.Runner.WaitFor(ctx, position)
}

// Position is the log position the read models reflect.
func (q JobQueries) Position() uint64 { return q.Runner.Position() }
