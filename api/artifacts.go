package api

import (
	"context"
	"errors"
	"io"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/projections"
)

// ArtifactReader opens stored run artifacts.
type ArtifactReader interface {
	// Open streams the artifact stored under key ("<run>/<job>/<name>")
	// with its content type and size; an error matching ErrArtifactGone
	// when it was never stored or has expired.
	Open(ctx context.Context, key string) (io.ReadCloser, string, int64, error)
}

// ErrArtifactGone is what an ArtifactReader returns for an artifact it
// does not hold (never stored, or expired after the retention period).
var ErrArtifactGone = errors.New("artifact not found or expired")

// handleArtifact streams one artifact of a job of the caller's
// organisation. The job's events name its artifacts; the files themselves
// expire after the retention period while the events stay, so an expired
// artifact answers 404 with a message saying so.
func (s *Server) handleArtifact(c *fiber.Ctx) error {
	job, err := s.lookupJob(c)
	if err != nil {
		return err
	}
	name := c.Params("name")
	var found *projections.Artifact
	for i := range job.Artifacts {
		if job.Artifacts[i].Name == name {
			found = &job.Artifacts[i]
		}
	}
	if found == nil || s.artifacts == nil {
		return projections.ErrNotFound
	}
	rc, ct, size, err := s.artifacts.Open(c.UserContext(), job.RunID+"/"+job.ID+"/"+name)
	if errors.Is(err, ErrArtifactGone) {
		return &Error{Code: CodeNotFound, Message: "artifact " + name + " has expired (its events remain in the job's log)"}
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, ct)
	c.Set(fiber.HeaderContentDisposition, `inline; filename="`+name+`"`)
	if size > 0 {
		c.Set(fiber.HeaderContentLength, strconv.FormatInt(size, 10))
	}
	data, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		return err
	}
	return c.Send(data)
}
