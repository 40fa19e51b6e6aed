package events

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Provenance facts that belong to no run (docs/provenance.md):
//
//	audit-<org>          WhatIfRequested: somebody asked a counterfactual replay
//	tool-<org>-<tool>    ToolMaintenanceScheduled: planned downtime of a tool
const (
	CategoryTool = "tool"

	TypeWhatIfRequested          = "WhatIfRequested"
	TypeToolMaintenanceScheduled = "ToolMaintenanceScheduled"
)

// ToolStream is the stream of organisation orgID's tool toolID. A tool id
// that is not a valid stream name part (letters, digits, '-', '_', at most
// 100) is named by its hash instead; the events carry the id itself.
func ToolStream(orgID, toolID string) string {
	key := toolID
	ok := len(key) > 0 && len(key) <= 100
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			ok = false
			break
		}
	}
	if !ok {
		sum := sha256.Sum256([]byte(toolID))
		key = "h" + hex.EncodeToString(sum[:12])
	}
	return CategoryTool + "-" + orgID + "-" + key
}

// WhatIfRequested: somebody asked what the R2R law and SPC would have
// decided under another setting (POST /api/r2r/what-if). Appended to the
// organisation's audit stream only: a what-if writes to no run's log.
type WhatIfRequested struct {
	// Setting is the alternative: Off, or λ and targets (zero: recorded).
	Off     bool               `json:"off,omitempty"`
	Lambda  float64            `json:"lambda,omitempty"`
	Targets map[string]float64 `json:"targets,omitempty"`
	// The range: the runs asked for (all when empty), the tool, the SPC
	// baseline, and how many runs the answer replayed.
	RunIDs   []string `json:"run_ids,omitempty"`
	ToolID   string   `json:"tool_id,omitempty"`
	Baseline int      `json:"baseline,omitempty"`
	Runs     int      `json:"runs"`
	// Changed counts the decisions the setting would have changed.
	Changed int `json:"changed"`
}

// ToolMaintenanceScheduled: an engineer or admin planned maintenance of a
// tool over [From, Until): SEMI E10 scheduled downtime.
type ToolMaintenanceScheduled struct {
	MaintenanceID string    `json:"maintenance_id"`
	OrgID         string    `json:"org_id"`
	ToolID        string    `json:"tool_id"`
	From          time.Time `json:"from"`
	Until         time.Time `json:"until"`
	Reason        string    `json:"reason"`
}

// RunPolicy is the retry and time-limit policy that governs a run, as its
// RunStarted records it (durations in seconds of process time).
// Runs whose log predates it ran under the documented defaults
// (run.DefaultPolicy).
type RunPolicy struct {
	MaxRetries int     `json:"max_retries"`
	RetryBaseS float64 `json:"retry_base_s"`
	RetryCapS  float64 `json:"retry_cap_s"`
	SoftLimitS float64 `json:"soft_limit_s"`
	HardLimitS float64 `json:"hard_limit_s"`
}

func (WhatIfRequested) EventType() string          { return TypeWhatIfRequested }
func (ToolMaintenanceScheduled) EventType() string { return TypeToolMaintenanceScheduled }

func init() {
	register[WhatIfRequested](1)
	register[ToolMaintenanceScheduled](1)
}
