package api

import (
	"context"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

// EventAppender appends the API's own events: API keys, token families and
// denied attempts. Any events.Store is one.
type EventAppender interface {
	// Append: see events.Store. Returns an error matching
	// events.ErrConflict when the stream is not at the expected revision.
	Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error)
}

var _ EventAppender = events.Store(nil)

// Credentials is what the API reads to verify API keys, refresh tokens and
// revoked access tokens (*projections.Security is one).
type Credentials interface {
	// APIKey returns the key with id, or projections.ErrNotFound.
	APIKey(id string) (projections.APIKey, error)
	// APIKeys returns the keys of an organisation.
	APIKeys(orgID string) []projections.APIKey
	// Family returns a token family, or projections.ErrNotFound.
	Family(id string) (projections.TokenFamily, error)
	// AccessTokenRevoked reports whether the access token jti is revoked.
	AccessTokenRevoked(jti string) bool
}

// AuditLog is what the API reads of the audit read model
// (*projections.Audit is one).
type AuditLog interface {
	// Entries returns a page of audit entries of f.OrgID and whether more
	// follow.
	Entries(f projections.AuditFilter) ([]projections.AuditEntry, bool)
	// Owner returns the organisation of a run or job id the log holds.
	Owner(id string) (string, bool)
}

var (
	_ Credentials = (*projections.Security)(nil)
	_ AuditLog    = (*projections.Audit)(nil)
)
