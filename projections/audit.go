package projections

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// Audit actions: what an audit entry says somebody did.
const (
	ActionCreated            = "created"
	ActionPaused             = "paused"
	ActionResumed            = "resumed"
	ActionCancelRequested    = "cancel_requested"
	ActionCancelled          = "cancelled"
	ActionRetried            = "retried"
	ActionControllerTuned    = "controller_tuned"
	ActionAPIKeyIssued       = "apikey_issued"
	ActionAPIKeyRevoked      = "apikey_revoked"
	ActionTokenIssued        = "token_issued"
	ActionTokenRefreshed     = "token_refreshed"
	ActionTokenFamilyRevoked = "token_family_revoked"
	ActionAccessDenied       = "access_denied"
	ActionWhatIf             = "what_if"
	ActionMaintenance        = "maintenance_scheduled"
)

// auditActions maps the audited event types to their action. Other events
// (telemetry, phases, results) are what a run did, not what a person did.
var auditActions = map[string]string{
	events.TypeRunRequested:        ActionCreated,
	events.TypeRunPaused:           ActionPaused,
	events.TypeRunResumed:          ActionResumed,
	events.TypeRunCancelRequested:  ActionCancelRequested,
	events.TypeRunCancelled:        ActionCancelled,
	events.TypeRunRetried:          ActionRetried,
	events.TypeControllerTuned:     ActionControllerTuned,
	events.TypeAPIKeyIssued:        ActionAPIKeyIssued,
	events.TypeAPIKeyRevoked:       ActionAPIKeyRevoked,
	events.TypeRefreshTokenIssued:  ActionTokenIssued,
	events.TypeRefreshTokenRotated: ActionTokenRefreshed,
	events.TypeTokenFamilyRevoked:  ActionTokenFamilyRevoked,
	events.TypeAccessDenied:        ActionAccessDenied,
	// Provenance (docs/provenance.md).
	events.TypeWhatIfRequested:          ActionWhatIf,
	events.TypeToolMaintenanceScheduled: ActionMaintenance,
}

// AuditEntry is one audited event: who did what, when.
type AuditEntry struct {
	Position      uint64         `json:"position"`
	Time          time.Time      `json:"time"`
	OrgID         string         `json:"org_id"`
	UserID        string         `json:"user_id"`
	Role          string         `json:"role"`
	Action        string         `json:"action"`
	Type          string         `json:"type"` // the event type, without version
	RunID         string         `json:"run_id,omitempty"`
	JobID         string         `json:"job_id,omitempty"`
	RequestID     string         `json:"request_id,omitempty"`
	CorrelationID string         `json:"correlation_id,omitempty"`
	Stream        string         `json:"stream"`
	Details       map[string]any `json:"details,omitempty"`
}

// AuditFilter selects audit entries of one organisation. Zero fields
// select everything.
type AuditFilter struct {
	OrgID  string // required
	UserID string
	RunID  string
	// Type is an action ("paused") or an event type ("RunPaused").
	Type         string
	Since, Until time.Time // Since inclusive, Until exclusive
	// After is the position of the last entry of the previous page.
	After uint64
	Limit int
}

// Audit is the audit read model: one entry per audited event, per
// organisation, in log order; and which organisation owns each run and job,
// so the API can tell a probe of another organisation's resource from a
// request for a missing one.
type Audit struct {
	mu      sync.RWMutex
	entries map[string][]AuditEntry // org → entries by position
	owners  map[string]string       // run or job id → org
}

var _ Projection = (*Audit)(nil)

// NewAudit returns an empty audit model.
func NewAudit() *Audit {
	a := &Audit{}
	a.Reset()
	return a
}

// Name implements Projection.
func (a *Audit) Name() string { return "audit" }

// Reset implements Projection.
func (a *Audit) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries, a.owners = map[string][]AuditEntry{}, map[string]string{}
}

type auditSnapshot struct {
	Entries map[string][]AuditEntry `json:"entries"`
	Owners  map[string]string       `json:"owners"`
}

// Snapshot implements Projection.
func (a *Audit) Snapshot() ([]byte, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return json.Marshal(auditSnapshot{Entries: a.entries, Owners: a.owners})
}

// Restore implements Projection.
func (a *Audit) Restore(data []byte) error {
	var s auditSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore audit: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries, a.owners = s.Entries, s.Owners
	if a.entries == nil {
		a.entries = map[string][]AuditEntry{}
	}
	if a.owners == nil {
		a.owners = map[string]string{}
	}
	return nil
}

// Wants implements Selective: the audited types.
func (a *Audit) Wants(_, baseType string) bool {
	_, ok := auditActions[baseType]
	return ok
}

// Apply implements Projection.
func (a *Audit) Apply(rec events.Record) error {
	if !a.Wants("", events.BaseType(rec.Type)) {
		return nil
	}
	return a.applyDecoded(rec, decodedOf(rec))
}

// decodes implements decoder.
func (a *Audit) decodes(_, _ string) bool { return true }

// applyDecoded implements decoder.
func (a *Audit) applyDecoded(rec events.Record, d *decoded) error {
	p, err := d.p, d.err
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	typ := events.BaseType(rec.Type)
	action := auditActions[typ]
	md := rec.Metadata
	e := AuditEntry{Position: rec.Position, Time: rec.Time, OrgID: md.OrgID, UserID: md.UserID, Role: md.Role,
		Action: action, Type: typ, RequestID: md.RequestID, CorrelationID: md.CorrelationID, Stream: rec.Stream}
	if events.Category(rec.Stream) == events.CategoryRun {
		e.RunID = events.StreamID(rec.Stream)
	}
	var owned []string
	switch ev := p.(type) {
	case *events.RunRequested:
		e.JobID = ev.JobID
		e.Details = map[string]any{"kind": ev.Kind, "priority": ev.Priority}
		if ev.ToolID != "" {
			e.Details["tool_id"] = ev.ToolID
		}
		owned = []string{e.RunID, ev.JobID}
	case *events.RunPaused:
		e.JobID, e.Details = ev.JobID, map[string]any{"step": ev.Step}
	case *events.RunResumed:
		e.JobID, e.Details = ev.JobID, map[string]any{"step": ev.Step}
	case *events.RunCancelRequested:
		e.JobID, e.Details = ev.JobID, map[string]any{"reason": ev.Reason}
	case *events.RunCancelled:
		e.JobID, e.Details = ev.JobID, map[string]any{"reason": ev.Reason, "step": ev.Step, "safe_state": ev.SafeState}
	case *events.RunRetried:
		e.JobID, e.Details = ev.JobID, map[string]any{"from_job_id": ev.FromJobID}
		owned = []string{ev.JobID}
	case *events.ControllerTuned:
		e.Details = map[string]any{"tuning_id": ev.TuningID, "controller_type": ev.ControllerType,
			"optimization_target": ev.OptimizationTarget}
	case *events.APIKeyIssued:
		e.Details = map[string]any{"key_id": ev.KeyID, "name": ev.Name, "role": ev.Role}
		if ev.ExpiresAt != nil {
			e.Details["expires_at"] = ev.ExpiresAt
		}
	case *events.APIKeyRevoked:
		e.Details = map[string]any{"key_id": ev.KeyID}
		if ev.Reason != "" {
			e.Details["reason"] = ev.Reason
		}
	case *events.RefreshTokenIssued:
		e.Details = map[string]any{"family_id": ev.FamilyID, "key_id": ev.KeyID, "role": ev.Role}
	case *events.RefreshTokenRotated:
		e.Details = map[string]any{"family_id": ev.FamilyID}
	case *events.TokenFamilyRevoked:
		e.Details = map[string]any{"family_id": ev.FamilyID, "reason": ev.Reason}
	case *events.WhatIfRequested:
		e.Details = map[string]any{"setting": map[string]any{"off": ev.Off, "lambda": ev.Lambda, "targets": ev.Targets},
			"run_ids": ev.RunIDs, "tool_id": ev.ToolID, "baseline": ev.Baseline, "runs": ev.Runs, "changed": ev.Changed}
	case *events.ToolMaintenanceScheduled:
		e.Details = map[string]any{"maintenance_id": ev.MaintenanceID, "tool_id": ev.ToolID, "from": ev.From,
			"until": ev.Until, "reason": ev.Reason}
	case *events.AccessDenied:
		e.Details = map[string]any{"status": ev.Status, "method": ev.Method, "path": ev.Path, "reason": ev.Reason,
			"count": max(ev.Count, 1)}
		if ev.Address != "" {
			e.Details["address"] = ev.Address
		}
		if ev.FromOrg != "" {
			e.Details["from_org"] = ev.FromOrg
		}
		if ev.Resource != "" {
			e.Details["resource"] = ev.Resource
			// The API names resources "run:<id>" and "job:<id>".
			switch kind, id, _ := strings.Cut(ev.Resource, ":"); kind {
			case "run":
				e.RunID = id
			case "job":
				e.JobID = id
			}
		}
	}
	if e.OrgID == "" {
		return nil // nobody's to show; every command's events carry their org
	}
	// Details as a snapshot restores them (JSON numbers and strings), so a
	// restored model answers exactly like the live one.
	if e.Details != nil && !plainJSON(e.Details) {
		raw, err := json.Marshal(e.Details)
		if err != nil {
			return fmt.Errorf("audit details: %w", err)
		}
		e.Details = nil
		if err := json.Unmarshal(raw, &e.Details); err != nil {
			return fmt.Errorf("audit details: %w", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range owned {
		if _, ok := a.owners[id]; !ok && id != "" {
			a.owners[id] = e.OrgID
		}
	}
	list := a.entries[e.OrgID]
	if n := len(list); n > 0 && list[n-1].Position >= e.Position {
		return nil // replayed
	}
	a.entries[e.OrgID] = append(list, e)
	return nil
}

// Owner returns the organisation that owns a run or job id, if the log
// holds it.
func (a *Audit) Owner(id string) (string, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	org, ok := a.owners[id]
	return org, ok
}

// Entries returns up to f.Limit entries of f.OrgID matching f after
// position f.After, oldest first, and whether more follow.
func (a *Audit) Entries(f AuditFilter) (entries []AuditEntry, more bool) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	list := a.entries[f.OrgID]
	i := sort.Search(len(list), func(i int) bool { return list[i].Position > f.After })
	for ; i < len(list); i++ {
		e := list[i]
		if !f.match(e) {
			continue
		}
		if len(entries) == f.Limit {
			return entries, true
		}
		entries = append(entries, e)
	}
	return entries, false
}

func (f AuditFilter) match(e AuditEntry) bool {
	switch {
	case f.UserID != "" && e.UserID != f.UserID,
		f.RunID != "" && e.RunID != f.RunID,
		f.Type != "" && e.Action != f.Type && e.Type != f.Type,
		!f.Since.IsZero() && e.Time.Before(f.Since),
		!f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	}
	return true
}

// AuditActions lists the actions the audit model records.
func AuditActions() []string {
	out := make([]string, 0, len(auditActions))
	for _, a := range auditActions {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// plainJSON turns details, in place, into what a JSON round trip gives
// back (json.Marshal, then json.Unmarshal into a map[string]any) when
// every value is of a type whose round trip it knows: a string of valid
// UTF-8 (a process.Kind too) stays a string, an int or a finite float64
// becomes that float64 (strconv rounds both alike), a bool or nil stays.
// It reports false for any other value, leaving the details to the round
// trip (which gives the same for the values already turned).
func plainJSON(details map[string]any) bool {
	for k, v := range details {
		switch v := v.(type) {
		case string:
			if !utf8.ValidString(v) {
				return false
			}
		case process.Kind:
			if !utf8.ValidString(string(v)) {
				return false
			}
			details[k] = string(v)
		case int:
			details[k] = float64(v)
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
		case bool, nil:
		default:
			return false
		}
	}
	return true
}
