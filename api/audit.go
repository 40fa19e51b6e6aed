package api

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// Audit query limits.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 500
	auditAppendWait   = 2 * time.Second
)

// registerAuditRoutes adds the audit trail.
func (s *Server) registerAuditRoutes() {
	s.handle(fiber.MethodGet, "/api/audit", PermAuditView,
		"Who did what and when in the organisation, denied attempts included", s.handleAudit)
}

// auditDenials records an AccessDenied event when the rest of the chain
// refuses a request: 401 where the credential's organisation is known for
// sure and 403, in the caller's organisation's audit; the 404 a command
// gets for another organisation's run, job or API key in that other
// organisation's audit, so that the prober sees exactly what a missing id
// gives (no entry, no moved X-Spectra-Position). A request whose
// organisation is unknown (a forged token) is only logged: its claims
// cannot be trusted to pick a stream. Attempts are aggregated per
// principal, address and window (denialLog).
func (s *Server) auditDenials(c *fiber.Ctx) error {
	// Params are read before the handler: they name the resource.
	runID, jobID, keyID := c.Params("run_id"), c.Params("job_id"), c.Params("key_id")
	err := c.Next()
	if err == nil {
		return nil
	}
	status, d := classify(err)
	var (
		who      Principal
		resource string
	)
	switch status {
	case http.StatusUnauthorized:
		p, ok := c.Locals(localDenied).(Principal)
		if !ok {
			return err
		}
		who = p
	case http.StatusForbidden:
		who = principal(c)
		resource = named(runID, jobID, keyID)
	case http.StatusNotFound:
		if c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead {
			return err
		}
		who = principal(c)
		owner, res := s.foreignResource(who.OrgID, runID, jobID, keyID)
		if res == "" {
			return err // missing for everybody, not hidden
		}
		s.recordProbe(c, who, owner, d.Message, res)
		return err
	default:
		return err
	}
	s.recordDenied(c, who, status, d.Message, resource)
	return err
}

// named names the resource of a request's path, "" when it has none.
func named(runID, jobID, keyID string) string {
	switch {
	case runID != "":
		return "run:" + runID
	case jobID != "":
		return "job:" + jobID
	case keyID != "":
		return "apikey:" + keyID
	}
	return ""
}

// foreignResource names the run, job or API key of the request, and its
// organisation, when it exists in an organisation other than org (""
// otherwise).
func (s *Server) foreignResource(org, runID, jobID, keyID string) (owner, resource string) {
	if s.audit != nil {
		for _, r := range []struct{ kind, id string }{{"run", runID}, {"job", jobID}} {
			if r.id == "" {
				continue
			}
			if o, ok := s.audit.Owner(r.id); ok && o != org {
				return o, r.kind + ":" + r.id
			}
		}
	}
	if keyID != "" && s.creds != nil {
		if k, err := s.creds.APIKey(keyID); err == nil && k.OrgID != org {
			return k.OrgID, "apikey:" + keyID
		}
	}
	return "", ""
}

// recordDenied records AccessDenied in who's organisation's audit stream.
// A failure to record is logged; it never changes the answer.
func (s *Server) recordDenied(c *fiber.Ctx, who Principal, status int, reason, resource string) {
	if !validOrgID(who.OrgID) {
		return
	}
	md := s.metadata(c)
	md.OrgID, md.UserID, md.Role = who.OrgID, who.UserID, string(who.Role)
	ev := events.AccessDenied{Status: status, Method: c.Method(), Path: c.Path(), Reason: reason,
		Resource: resource, Address: c.IP()}
	if s.denied == nil {
		s.log.WarnContext(c.UserContext(), "access denied (no event log to record it)",
			slog.Any("metadata", md), slog.Int("status", status), slog.String("reason", reason))
		return
	}
	k := denialKey{stream: events.AuditStream(who.OrgID), org: who.OrgID, user: who.UserID, addr: ev.Address,
		resource: resource, reason: reason, status: status}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), auditAppendWait)
	defer cancel()
	// The caller learns where its own denial is (401 and 403 only: a probe
	// of another organisation's resource moves nothing the prober sees).
	if pos := s.denied.record(ctx, k, ev, md); pos > 0 {
		c.Set(HeaderPosition, strconv.FormatUint(pos, 10))
	}
}

// recordProbe records, in the owner organisation's audit, that who tried a
// command on one of its resources. It is appended when the aggregation
// window closes, not while the request is answered: the prober can neither
// time it nor see the log position move because of it.
func (s *Server) recordProbe(c *fiber.Ctx, who Principal, owner, reason, resource string) {
	if !validOrgID(owner) || s.denied == nil {
		return
	}
	md := s.metadata(c)
	md.OrgID, md.UserID, md.Role = owner, who.UserID, string(who.Role)
	ev := events.AccessDenied{Status: http.StatusNotFound, Method: c.Method(), Path: c.Path(), Reason: reason,
		Resource: resource, Address: c.IP(), FromOrg: who.OrgID}
	k := denialKey{stream: events.AuditStream(owner), org: who.OrgID, user: who.UserID, addr: ev.Address,
		resource: resource, reason: reason, status: http.StatusNotFound}
	s.denied.later(k, ev, md)
}

// auditPage is one page of the audit trail.
type auditPage struct {
	Entries    []projections.AuditEntry `json:"entries"`
	NextCursor string                   `json:"next_cursor,omitempty"`
	HasMore    bool                     `json:"has_more"`
}

const cursorPrefix = "audit:"

func encodeCursor(pos uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatUint(pos, 10)))
}

func decodeCursor(s string) (uint64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	n, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok {
		return 0, false
	}
	pos, err := strconv.ParseUint(n, 10, 64)
	return pos, err == nil
}

// auditTypes are the values the type filter takes: actions and the event
// types behind them.
var auditTypes = func() []string {
	t := projections.AuditActions()
	t = append(t, events.TypeRunRequested, events.TypeRunPaused, events.TypeRunResumed,
		events.TypeRunCancelRequested, events.TypeRunCancelled, events.TypeRunRetried, events.TypeControllerTuned,
		events.TypeAPIKeyIssued, events.TypeAPIKeyRevoked, events.TypeRefreshTokenIssued,
		events.TypeRefreshTokenRotated, events.TypeTokenFamilyRevoked, events.TypeAccessDenied)
	slices.Sort(t)
	return t
}()

// handleAudit answers GET /api/audit?user_id=&run_id=&type=&since=&until=&limit=&cursor=
// from the audit read model, for the caller's organisation only.
func (s *Server) handleAudit(c *fiber.Ctx) error {
	if s.audit == nil {
		return &Error{Code: CodeUnavailable, Message: "the audit trail is not available on this node"}
	}
	var ve process.ValidationError
	f := projections.AuditFilter{
		OrgID:  principal(c).OrgID,
		UserID: c.Query("user_id"),
		RunID:  c.Query("run_id"),
		Type:   queryEnum(c, &ve, "type", auditTypes),
		Limit:  queryInt(c, &ve, "limit", defaultAuditLimit, 1, maxAuditLimit),
	}
	if len(f.UserID) > 256 {
		ve.Add("user_id", nil, "at most 256 characters", "user_id is too long")
	}
	if f.RunID != "" && !runIDPattern.MatchString(f.RunID) {
		ve.Add("run_id", f.RunID, "a run id such as ION-20260101-A1B2C3D4", "malformed run_id")
	}
	f.Since = queryTime(c, &ve, "since")
	f.Until = queryTime(c, &ve, "until")
	if cur := c.Query("cursor"); cur != "" {
		pos, ok := decodeCursor(cur)
		if !ok {
			ve.Add("cursor", cur, "a next_cursor of a previous page", "malformed cursor")
		}
		f.After = pos
	}
	if err := ve.Err(); err != nil {
		return err
	}
	entries, more := s.audit.Entries(f)
	out := auditPage{Entries: make([]projections.AuditEntry, 0, len(entries)), HasMore: more}
	for _, e := range entries {
		if e.OrgID == f.OrgID { // never another organisation's, whatever the read model says
			out.Entries = append(out.Entries, e)
		}
	}
	if more && len(entries) > 0 {
		out.NextCursor = encodeCursor(entries[len(entries)-1].Position)
	}
	return c.JSON(out)
}

// queryTime reads an optional RFC 3339 time query parameter.
func queryTime(c *fiber.Ctx, ve *process.ValidationError, name string) time.Time {
	v := c.Query(name)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		ve.Add(name, v, "an RFC 3339 time such as 2026-01-01T00:00:00Z", "malformed "+name)
	}
	return t
}
