package api

import (
	"context"
	"math"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// registerJobRoutes adds the job endpoints (seed 2.8, plus pause and
// resume).
func (s *Server) registerJobRoutes() {
	s.handle(fiber.MethodGet, "/api/jobs", PermJobViewStatus, "List jobs", s.handleJobList)
	s.handle(fiber.MethodGet, "/api/jobs/:job_id", PermJobViewStatus, "Get a job's status", s.handleJobGet)
	s.handle(fiber.MethodPost, "/api/jobs/:job_id/cancel", PermJobCancel, "Cancel a job's run",
		s.handleJobCommand(Commands.CancelRun, func(job string, _ actors.Accepted) string {
			return "cancellation of job " + job + " requested"
		}))
	s.handle(fiber.MethodPost, "/api/jobs/:job_id/pause", PermRunPause, "Pause a job's run",
		s.handleJobCommand(Commands.PauseRun, func(job string, _ actors.Accepted) string {
			return "pause of job " + job + " requested"
		}))
	s.handle(fiber.MethodPost, "/api/jobs/:job_id/resume", PermRunPause, "Resume a paused job's run",
		s.handleJobCommand(Commands.ResumeRun, func(job string, _ actors.Accepted) string {
			return "resumption of job " + job + " requested"
		}))
	s.handle(fiber.MethodPost, "/api/jobs/:job_id/retry", PermJobRetry,
		"Retry a failed or cancelled job as a new job with the same parameters",
		s.handleJobCommand(Commands.RetryJob, func(job string, acc actors.Accepted) string {
			return "job " + job + " retried as job " + acc.JobID
		}))
	s.handle(fiber.MethodGet, "/api/jobs/:job_id/logs", PermJobViewLogs, "Get a job's log", s.handleJobLogs)
	s.handle(fiber.MethodGet, "/api/jobs/:job_id/artifacts/:name", PermJobViewStatus,
		"Download a job's artifact (telemetry, dose map, charts)", s.handleArtifact)
}

// jobView is a job as the API shows it: never null lists.
type jobView projections.Job

func viewJob(j projections.Job) jobView {
	if j.Artifacts == nil {
		j.Artifacts = []projections.Artifact{}
	}
	if j.Metadata == nil {
		j.Metadata = map[string]any{}
	}
	return jobView(j)
}

// lookupJob reads a job of the caller's organisation.
func (s *Server) lookupJob(c *fiber.Ctx) (projections.Job, error) {
	p := principal(c)
	job, err := s.q.Job(c.UserContext(), p.OrgID, c.Params("job_id"))
	if err != nil {
		return projections.Job{}, err
	}
	if job.OrgID != p.OrgID {
		return projections.Job{}, projections.ErrNotFound
	}
	return job, nil
}

func (s *Server) handleJobGet(c *fiber.Ctx) error {
	job, err := s.lookupJob(c)
	if err != nil {
		return err
	}
	return c.JSON(viewJob(job))
}

// jobList is a page of jobs (seed 2.8).
type jobList struct {
	Jobs     []jobView `json:"jobs"`
	Total    int       `json:"total"`
	Page     int       `json:"page"`
	PageSize int       `json:"page_size"`
	HasMore  bool      `json:"has_more"`
}

func (s *Server) handleJobList(c *fiber.Ctx) error {
	var ve process.ValidationError
	jobType := queryEnum(c, &ve, "job_type", jobTypes)
	status := queryEnum(c, &ve, "status", jobStatuses)
	page := queryInt(c, &ve, "page", 1, 1, math.MaxInt32/maxPageSize)
	size := queryInt(c, &ve, "page_size", defaultPageSize, 1, maxPageSize)
	if err := ve.Err(); err != nil {
		return err
	}
	f := projections.JobFilter{
		OrgID:   principal(c).OrgID,
		JobType: jobType,
		Status:  status,
		Limit:   size,
		Offset:  (page - 1) * size,
	}
	jobs, total, err := s.q.Jobs(c.UserContext(), f)
	if err != nil {
		return err
	}
	out := jobList{Jobs: make([]jobView, 0, len(jobs)), Total: total, Page: page, PageSize: size,
		HasMore: f.Offset+len(jobs) < total}
	for _, j := range jobs {
		if j.OrgID == f.OrgID {
			out.Jobs = append(out.Jobs, viewJob(j))
		}
	}
	return c.JSON(out)
}

// runCommand is one of the Commands methods on an existing run.
type runCommand func(Commands, context.Context, actors.RunCommand) (actors.Accepted, error)

// handleJobCommand sends cmd for the job's run, naming the job so that the
// actor layer can refuse a command on a job that is no longer current.
func (s *Server) handleJobCommand(cmd runCommand, message func(jobID string, acc actors.Accepted) string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		job, err := s.lookupJob(c)
		if err != nil {
			return err
		}
		reason, err := optionalReason(c)
		if err != nil {
			return err
		}
		var acc actors.Accepted
		err = s.command(c, "/api/jobs/"+job.ID, func(ctx context.Context) (err error) {
			acc, err = cmd(s.cmd, ctx, actors.RunCommand{RunID: job.RunID, JobID: job.ID, Reason: reason, Meta: s.metadata(c)})
			return err
		})
		if err != nil {
			return err
		}
		return s.commandAccepted(c, acc, message(job.ID, acc))
	}
}
