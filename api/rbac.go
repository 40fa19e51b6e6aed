package api

import "slices"

// Role is a user's role in their organisation.
type Role string

// Roles (the specification's "Roles and permissions").
const (
	RoleAdmin    Role = "admin"
	RoleEngineer Role = "engineer"
	RoleOperator Role = "operator"
	RoleViewer   Role = "viewer"
)

// Roles lists every role, most powerful first.
var Roles = []Role{RoleAdmin, RoleEngineer, RoleOperator, RoleViewer}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	_, ok := rolePermissions[r]
	return ok
}

// Permission names one thing a role may do.
type Permission string

// Permissions (the specification). Names are the seed's and part of the contract.
const (
	PermIonCreateRun     Permission = "ion:create_run"
	PermIonViewRun       Permission = "ion:view_run"
	PermIonSimulate      Permission = "ion:simulate"
	PermIonCancelRun     Permission = "ion:cancel_run"
	PermIonViewTelemetry Permission = "ion:view_telemetry"

	PermRTPCreateRun      Permission = "rtp:create_run"
	PermRTPViewRun        Permission = "rtp:view_run"
	PermRTPTuneController Permission = "rtp:tune_controller"
	PermRTPCancelRun      Permission = "rtp:cancel_run"
	PermRTPViewTelemetry  Permission = "rtp:view_telemetry"

	PermJobViewStatus Permission = "job:view_status"
	PermJobCancel     Permission = "job:cancel"
	PermJobRetry      Permission = "job:retry"
	PermJobViewLogs   Permission = "job:view_logs"

	PermSPCView   Permission = "spc:view"
	PermSPCManage Permission = "spc:manage"
	PermAuditView Permission = "audit:view"
	// vm:view and vm:manage (the seed's virtual-metrology models) left the
	// table with no route to guard: VM predictions are part of a run's
	// results (ion/rtp:view_run). A test keeps every permission used.

	PermRunPause     Permission = "run:pause" // pause and resume
	PermAPIKeyManage Permission = "apikey:manage"

	// Fab operations (docs/fab.md): engineers write recipes, admins
	// approve them; operators start and steer lots.
	PermRecipeView     Permission = "recipe:view"
	PermRecipeWrite    Permission = "recipe:write"
	PermRecipeApprove  Permission = "recipe:approve"
	PermLotView        Permission = "lot:view"
	PermLotCreate      Permission = "lot:create"
	PermLotControl     Permission = "lot:control" // cancel, pause, resume
	PermScheduleView   Permission = "schedule:view"
	PermScheduleManage Permission = "schedule:manage"

	// Provenance (docs/provenance.md): engineers schedule tool maintenance.
	PermToolMaintain Permission = "tool:maintain"
)

// allPermissions is every permission, in the order above.
var allPermissions = []Permission{
	PermIonCreateRun, PermIonViewRun, PermIonSimulate, PermIonCancelRun, PermIonViewTelemetry,
	PermRTPCreateRun, PermRTPViewRun, PermRTPTuneController, PermRTPCancelRun, PermRTPViewTelemetry,
	PermJobViewStatus, PermJobCancel, PermJobRetry, PermJobViewLogs,
	PermSPCView, PermSPCManage, PermAuditView,
	PermRunPause, PermAPIKeyManage,
	PermRecipeView, PermRecipeWrite, PermRecipeApprove, PermLotView, PermLotCreate, PermLotControl,
	PermScheduleView, PermScheduleManage,
	PermToolMaintain,
}

// rolePermissions is the one permission table. Every route names the
// permission it needs (see routes); a role may use a route when its list
// here holds that permission.
//
//   - admin: everything in its organisation.
//   - engineer: creates runs, tunes controllers, simulates, views
//     everything (logs and audit included), retries; it may also cancel,
//     pause and resume any run of its organisation (not only the ones it
//     created: a shift hands runs over), each recorded in the audit trail
//     with who did it. Managing API keys stays with admins.
//   - operator: starts runs (creates them at the tool, as the seed's
//     operator did with ION_CREATE_RUN/RTP_CREATE_RUN) and stops them
//     (cancel, pause, resume), views runs and real-time data. The specification's
//     "start and stop runs" is read as creating them: in Spectra a run
//     starts when it is created, there is no separate start command.
//     Operators do not retry, tune, simulate, see logs or the audit trail.
//   - viewer: read only: runs (with their VM predictions), telemetry, job
//     status and SPC.
//   - fab operations: engineers write recipes and manage schedules, only
//     admins approve a version for production; operators start, cancel,
//     pause and resume lots (production runs of approved recipes); every
//     role sees the library, lots and schedules.
//   - provenance: engineers schedule tool maintenance (E10 scheduled
//     downtime); what-if replays need spc:manage.
var rolePermissions = map[Role][]Permission{
	RoleAdmin: allPermissions,
	RoleEngineer: {
		PermIonCreateRun, PermIonViewRun, PermIonSimulate, PermIonCancelRun, PermIonViewTelemetry,
		PermRTPCreateRun, PermRTPViewRun, PermRTPTuneController, PermRTPCancelRun, PermRTPViewTelemetry,
		PermJobViewStatus, PermJobCancel, PermJobRetry, PermJobViewLogs,
		PermSPCView, PermSPCManage, PermAuditView,
		PermRunPause,
		PermRecipeView, PermRecipeWrite, PermLotView, PermLotCreate, PermLotControl, PermScheduleView, PermScheduleManage,
		PermToolMaintain,
	},
	RoleOperator: {
		PermIonCreateRun, PermIonViewRun, PermIonCancelRun, PermIonViewTelemetry,
		PermRTPCreateRun, PermRTPViewRun, PermRTPCancelRun, PermRTPViewTelemetry,
		PermJobViewStatus, PermJobCancel,
		PermSPCView,
		PermRunPause,
		PermRecipeView, PermLotView, PermLotCreate, PermLotControl, PermScheduleView,
	},
	RoleViewer: {
		PermIonViewRun, PermIonViewTelemetry,
		PermRTPViewRun, PermRTPViewTelemetry,
		PermJobViewStatus,
		PermSPCView,
		PermRecipeView, PermLotView, PermScheduleView,
	},
}

// Can reports whether role r holds permission p.
func (r Role) Can(p Permission) bool {
	return slices.Contains(rolePermissions[r], p)
}

// Permissions returns a copy of the permissions of role r.
func (r Role) Permissions() []Permission {
	return slices.Clone(rolePermissions[r])
}
