package events

import (
	"fmt"
	"strings"
)

// Stream categories.
const (
	CategoryRun     = "run"
	CategoryTuning  = "tuning"
	CategoryAPIKey  = "apikey"
	CategorySession = "session"
	CategoryAudit   = "audit"
	CategoryIdem    = "idem"
)

// RunStream is the stream of a run.
func RunStream(runID string) string { return CategoryRun + "-" + runID }

// AuditStream is an organisation's stream of security facts that belong to
// no run (denied attempts).
func AuditStream(orgID string) string { return CategoryAudit + "-" + orgID }

// Category is the part of a stream name before its first '-'.
func Category(stream string) string {
	cat, _, _ := strings.Cut(stream, "-")
	return cat
}

// StreamID is the part of a stream name after its first '-'.
func StreamID(stream string) string {
	_, id, _ := strings.Cut(stream, "-")
	return id
}

// ValidateStream checks that a stream name is "<category>-<id>" where both
// parts are non-empty and hold only letters, digits, '-' and '_': names
// every store can use as a key (and NATS as a subject token).
func ValidateStream(stream string) error {
	cat, id, ok := strings.Cut(stream, "-")
	if !ok || cat == "" || id == "" || len(stream) > 200 {
		return fmt.Errorf("stream %q: %w", stream, ErrInvalid)
	}
	for _, r := range stream {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return fmt.Errorf("stream %q: %w", stream, ErrInvalid)
		}
	}
	return nil
}
