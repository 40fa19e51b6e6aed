package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/fab"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// Fab is what the API asks of fab operations (*fab.Service is one). Each
// call is scoped to its command's (or the argument's) organisation and
// returns fab.ErrNotFound for another's, a *process.ValidationError for
// bad input, or a *fab.RuleError when a rule refuses (an unapproved
// version for a production run, approving one's own version).
type Fab interface {
	SaveRecipe(ctx context.Context, c fab.SaveRecipe) (fab.Recipe, uint64, error)
	ApproveRecipe(ctx context.Context, c fab.ApproveRecipe) (fab.Recipe, uint64, error)
	Recipe(ctx context.Context, orgID, name string) (fab.Recipe, error)
	Resolve(ctx context.Context, orgID string, kind process.Kind, ref events.RecipeRef, production bool) (fab.Version, error)
	CreateLot(ctx context.Context, c fab.CreateLot) (fab.LotStart, error)
	Lot(ctx context.Context, orgID, lotID string) (fab.Lot, error)
	CommandLot(ctx context.Context, c fab.LotCommand) (fab.LotOutcome, error)
	RetryLot(ctx context.Context, c fab.LotRetry) (fab.LotOutcome, error)
	CreateSchedule(ctx context.Context, c fab.CreateSchedule) (fab.Schedule, uint64, error)
	Schedule(ctx context.Context, orgID, id string) (fab.Schedule, error)
	CommandSchedule(ctx context.Context, c fab.ScheduleCommand) (fab.Schedule, uint64, error)
}

// FabLists lists an organisation's recipes, lots and schedules
// (*projections.Fab is one).
type FabLists interface {
	Recipes(orgID string) []projections.RecipeSummary
	Lots(orgID string) []projections.LotSummary
	Schedules(orgID string) []projections.ScheduleSummary
}

var errNoFab = &Error{Code: CodeUnavailable, Message: "fab operations are not enabled on this server"}

// Bodies the fab endpoints answer with (and the OpenAPI document
// describes).
type (
	recipeList struct {
		Recipes []projections.RecipeSummary `json:"recipes"`
	}
	recipeVersion struct {
		Name    string       `json:"name"`
		Kind    process.Kind `json:"kind"`
		Version fab.Version  `json:"version"`
	}
	recipeDiff struct {
		Name    string       `json:"name"`
		From    int          `json:"from"`
		To      int          `json:"to"`
		Changes []fab.Change `json:"changes"`
	}
	lotList struct {
		Lots []projections.LotSummary `json:"lots"`
	}
	scheduleList struct {
		Schedules []projections.ScheduleSummary `json:"schedules"`
	}
	scheduleView struct {
		Schedule fab.Schedule `json:"schedule"`
		Firings  []firing     `json:"firings"`
		// Skips are the slots that started nothing, with the reason.
		Skips []skip `json:"skips"`
	}
)

// The fab routes' successes, for the OpenAPI document (openapi_schema.go).
func init() {
	for route, s := range map[string]success{
		"POST /api/recipes":                                   {status: 201, body: fab.Recipe{}, name: "Recipe"},
		"GET /api/recipes":                                    {status: 200, body: recipeList{}, name: "RecipeList"},
		"GET /api/recipes/:recipe":                            {status: 200, body: fab.Recipe{}, name: "Recipe"},
		"GET /api/recipes/:recipe/versions/:version":          {status: 200, body: recipeVersion{}, name: "RecipeVersion"},
		"POST /api/recipes/:recipe/versions/:version/approve": {status: 200, body: fab.Recipe{}, name: "Recipe"},
		"GET /api/recipes/:recipe/diff":                       {status: 200, body: recipeDiff{}, name: "RecipeDiff"},
		"POST /api/lots": {status: 201, body: fab.LotStart{}, name: "LotStarted", also: map[int]string{
			fiber.StatusOK: "the Idempotency-Key names a lot this principal started before: that lot, with any wafer runs a crash left out created now"}},
		"GET /api/lots":                           {status: 200, body: lotList{}, name: "LotList"},
		"GET /api/lots/:lot_id":                   {status: 200, body: lotView{}, name: "Lot"},
		"POST /api/lots/:lot_id/cancel":           {status: 202, body: fab.LotOutcome{}, name: "LotCommandAccepted"},
		"POST /api/lots/:lot_id/pause":            {status: 202, body: fab.LotOutcome{}, name: "LotCommandAccepted"},
		"POST /api/lots/:lot_id/resume":           {status: 202, body: fab.LotOutcome{}, name: "LotCommandAccepted"},
		"POST /api/lots/:lot_id/retry":            {status: 202, body: fab.LotOutcome{}, name: "LotCommandAccepted"},
		"POST /api/schedules":                     {status: 201, body: fab.Schedule{}, name: "Schedule"},
		"GET /api/schedules":                      {status: 200, body: scheduleList{}, name: "ScheduleList"},
		"GET /api/schedules/:schedule_id":         {status: 200, body: scheduleView{}, name: "ScheduleWithFirings"},
		"POST /api/schedules/:schedule_id/pause":  {status: 202, body: fab.Schedule{}, name: "Schedule"},
		"POST /api/schedules/:schedule_id/resume": {status: 202, body: fab.Schedule{}, name: "Schedule"},
	} {
		successes[route] = s
	}
}

// registerFabRoutes adds the recipe library, lots and schedules.
func (s *Server) registerFabRoutes() {
	s.handle(fiber.MethodPost, "/api/recipes", PermRecipeWrite,
		"Save a new version of a library recipe (validated like a run; version 1 creates the recipe)", s.handleRecipeSave)
	s.handle(fiber.MethodGet, "/api/recipes", PermRecipeView, "List the organisation's library recipes", s.handleRecipeList)
	s.handle(fiber.MethodGet, "/api/recipes/:recipe", PermRecipeView, "Get a library recipe with all its versions", s.handleRecipeGet)
	s.handle(fiber.MethodGet, "/api/recipes/:recipe/versions/:version", PermRecipeView,
		"Get one version of a library recipe", s.handleRecipeVersion)
	s.handle(fiber.MethodPost, "/api/recipes/:recipe/versions/:version/approve", PermRecipeApprove,
		"Approve a version for production runs (not by its author)", s.handleRecipeApprove)
	s.handle(fiber.MethodGet, "/api/recipes/:recipe/diff", PermRecipeView,
		"The fields that differ between two versions (?from=&to=)", s.handleRecipeDiff)

	s.handle(fiber.MethodPost, "/api/lots", PermLotCreate, "Start a lot: one run per wafer from a library recipe", s.handleLotCreate)
	s.handle(fiber.MethodGet, "/api/lots", PermLotView, "List the organisation's lots", s.handleLotList)
	s.handle(fiber.MethodGet, "/api/lots/:lot_id", PermLotView,
		"A lot: each wafer's progress, aggregate results and SPC points", s.handleLotGet)
	for _, verb := range []string{fab.LotCancel, fab.LotPause, fab.LotResume} {
		s.handle(fiber.MethodPost, "/api/lots/:lot_id/"+verb, PermLotControl, verbTitle(verb)+" every unfinished wafer of a lot",
			s.handleLotCommand(verb))
	}
	s.handle(fiber.MethodPost, "/api/lots/:lot_id/retry", PermLotControl,
		"Run a lot's failed wafers again (or the wafers named), each as a new job of its run", s.handleLotRetry)

	s.handle(fiber.MethodPost, "/api/schedules", PermScheduleManage,
		"Schedule a recipe or lot at a time or on a cron expression", s.handleScheduleCreate)
	s.handle(fiber.MethodGet, "/api/schedules", PermScheduleView, "List the organisation's schedules", s.handleScheduleList)
	s.handle(fiber.MethodGet, "/api/schedules/:schedule_id", PermScheduleView,
		"A schedule with its firings, from its log", s.handleScheduleGet)
	for _, verb := range []string{fab.LotPause, fab.LotResume} {
		s.handle(fiber.MethodPost, "/api/schedules/:schedule_id/"+verb, PermScheduleManage, verbTitle(verb)+" a schedule",
			s.handleScheduleCommand(verb))
	}
}

func verbTitle(v string) string { return string(v[0]-'a'+'A') + v[1:] }

// --- recipes ---

func (s *Server) handleRecipeSave(c *fiber.Ctx) error {
	if s.fab == nil {
		return errNoFab
	}
	fields, err := strictObject(c.Body(), false, "name", "kind", "recipe", "comment")
	if err != nil {
		return err
	}
	var ve process.ValidationError
	name := stringField(fields, &ve, "name", 64, true)
	kind := stringField(fields, &ve, "kind", 8, true)
	comment := stringField(fields, &ve, "comment", 1000, false)
	if isNull(fields["recipe"]) {
		ve.Add("recipe", nil, "a JSON object of ion or RTP recipe fields", "recipe is required")
	}
	if err := ve.Err(); err != nil {
		return err
	}
	var (
		r   fab.Recipe
		pos uint64
	)
	err = s.command(c, "/api/recipes/"+name, func(ctx context.Context) (err error) {
		r, pos, err = s.fab.SaveRecipe(ctx, fab.SaveRecipe{Name: name, Kind: process.Kind(kind),
			Recipe: bytes.Clone(fields["recipe"]), Comment: comment, Meta: s.metadata(c)})
		return err
	})
	if err != nil {
		return err
	}
	s.accepted(c, pos)
	c.Location("/api/recipes/" + r.Name)
	return c.Status(fiber.StatusCreated).JSON(r)
}

func (s *Server) handleRecipeList(c *fiber.Ctx) error {
	if s.fabLists == nil {
		return errNoFab
	}
	return c.JSON(recipeList{Recipes: s.fabLists.Recipes(principal(c).OrgID)})
}

func (s *Server) recipe(c *fiber.Ctx) (fab.Recipe, error) {
	if s.fab == nil {
		return fab.Recipe{}, errNoFab
	}
	return s.fab.Recipe(c.UserContext(), principal(c).OrgID, c.Params("recipe"))
}

func (s *Server) handleRecipeGet(c *fiber.Ctx) error {
	r, err := s.recipe(c)
	if err != nil {
		return err
	}
	return c.JSON(r)
}

// versionParam reads a version number from the path.
func versionParam(c *fiber.Ctx) (int, error) {
	v, err := strconv.Atoi(c.Params("version"))
	if err != nil || v < 1 {
		return 0, invalid("version", c.Params("version"), "an integer ≥ 1", "invalid version")
	}
	return v, nil
}

func (s *Server) handleRecipeVersion(c *fiber.Ctx) error {
	n, err := versionParam(c)
	if err != nil {
		return err
	}
	r, err := s.recipe(c)
	if err != nil {
		return err
	}
	if n > len(r.Versions) {
		return fab.ErrNotFound
	}
	return c.JSON(recipeVersion{Name: r.Name, Kind: r.Kind, Version: r.Versions[n-1]})
}

func (s *Server) handleRecipeApprove(c *fiber.Ctx) error {
	if s.fab == nil {
		return errNoFab
	}
	n, err := versionParam(c)
	if err != nil {
		return err
	}
	fields, err := strictObject(c.Body(), true, "comment")
	if err != nil {
		return err
	}
	var ve process.ValidationError
	comment := stringField(fields, &ve, "comment", 1000, false)
	if err := ve.Err(); err != nil {
		return err
	}
	var (
		r   fab.Recipe
		pos uint64
	)
	err = s.command(c, "/api/recipes/"+c.Params("recipe"), func(ctx context.Context) (err error) {
		r, pos, err = s.fab.ApproveRecipe(ctx, fab.ApproveRecipe{Name: c.Params("recipe"), Version: n,
			Comment: comment, Meta: s.metadata(c)})
		return err
	})
	if err != nil {
		return err
	}
	s.accepted(c, pos)
	return c.JSON(r)
}

func (s *Server) handleRecipeDiff(c *fiber.Ctx) error {
	var ve process.ValidationError
	from := queryInt(c, &ve, "from", 0, 1, math.MaxInt32)
	to := queryInt(c, &ve, "to", 0, 1, math.MaxInt32)
	if err := ve.Err(); err != nil {
		return err
	}
	r, err := s.recipe(c)
	if err != nil {
		return err
	}
	if to == 0 {
		to = r.Latest()
	}
	if from == 0 {
		from = max(to-1, 1)
	}
	if from > len(r.Versions) {
		return invalid("from", from, "1–"+strconv.Itoa(len(r.Versions)), "no such version")
	}
	if to > len(r.Versions) {
		return invalid("to", to, "1–"+strconv.Itoa(len(r.Versions)), "no such version")
	}
	changes, err := fab.Diff(r.Versions[from-1].Recipe, r.Versions[to-1].Recipe)
	if err != nil {
		return err
	}
	if changes == nil {
		changes = []fab.Change{}
	}
	return c.JSON(recipeDiff{Name: r.Name, From: from, To: to, Changes: changes})
}

// --- runs from the library ---

// runFields are the fields a run body may give beside a recipe reference:
// the run's own, never the recipe's physics.
var runFields = []string{"recipe", "engineering", "wafer_id", "lot_id", "comments", "tool_id", "priority",
	"simulate_fault", "simulate_disturbance"}

// recipeRef reads {"name": ..., "version": ...} under field.
func recipeRef(raw json.RawMessage, field string, ve *process.ValidationError) events.RecipeRef {
	var (
		ref   events.RecipeRef
		local process.ValidationError
	)
	obj, err := strictObject(raw, false, "name", "version")
	var fe *process.ValidationError
	switch {
	case errors.As(err, &fe):
		local.Fields = fe.Fields
	case err != nil:
		local.Add("", nil, `{"name", "version"}`, "must be an object")
	default:
		ref.Name = stringField(obj, &local, "name", 64, true)
		if raw := obj["version"]; !isNull(raw) {
			var f float64
			if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || f < 1 || f > 1e6 {
				local.Add("version", rawValue(raw), "an integer ≥ 1, or absent for the latest approved", "invalid version")
			} else {
				ref.Version = int(f)
			}
		}
	}
	for _, f := range local.Fields {
		if f.Field == "body" {
			f.Field = ""
		}
		f.Field = field + dotted(f.Field)
		ve.Fields = append(ve.Fields, f)
	}
	return ref
}

func dotted(f string) string {
	if f == "" {
		return ""
	}
	return "." + f
}

// engineering reads the engineering flag: an engineering run may use an
// unapproved version, and only roles that write recipes may start one.
func engineering(c *fiber.Ctx, fields map[string]json.RawMessage, ve *process.ValidationError) (bool, error) {
	raw := fields["engineering"]
	if isNull(raw) {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		ve.Add("engineering", rawValue(raw), "true or false", "engineering must be a boolean")
		return false, nil
	}
	if b && !principal(c).Role.Can(PermRecipeWrite) {
		return false, errForbidden("only roles that write recipes (" + string(PermRecipeWrite) + ") may start engineering runs")
	}
	return b, nil
}

// fromLibrary turns a create-run body that references a library recipe,
// {"recipe": {"name", "version"}, "wafer_id", …}, into the body the run is
// created with (the version's recipe plus the run's own fields) and its
// origin. A body without "recipe" is returned as it is. A run from the
// library is a production run unless it is an engineering run
// ("engineering": true) or injects a fault or disturbance; a production
// run needs an approved version.
func (s *Server) fromLibrary(c *fiber.Ctx, kind process.Kind, body []byte) ([]byte, *events.RunOrigin, error) {
	fields, err := jsonObject(body)
	if err != nil || isNull(fields["recipe"]) {
		return body, nil, nil // the recipe validation reports a bad body
	}
	if s.fab == nil {
		return nil, nil, errNoFab
	}
	var ve process.ValidationError
	for _, k := range sortedKeys(fields) {
		if !slices.Contains(runFields, k) {
			ve.Add(k, nil, "absent: set by the library recipe (a run from the library may give only "+
				"wafer_id, lot_id, comments, tool_id, priority, engineering and simulate_*)", "set by the recipe")
		}
	}
	ref := recipeRef(fields["recipe"], "recipe", &ve)
	eng, err := engineering(c, fields, &ve)
	if err != nil {
		return nil, nil, err
	}
	if err := ve.Err(); err != nil {
		return nil, nil, err
	}
	production := !eng && isNull(fields["simulate_fault"]) && isNull(fields["simulate_disturbance"])
	v, err := s.fab.Resolve(c.UserContext(), principal(c).OrgID, kind, ref, production)
	if errors.Is(err, fab.ErrNotFound) {
		return nil, nil, invalid("recipe.name", ref.Name, "a recipe (and version) of the organisation's library", "no such recipe or version")
	}
	if err != nil {
		return nil, nil, err
	}
	own := map[string]json.RawMessage{}
	for k, raw := range fields {
		if k != "recipe" && k != "engineering" {
			own[k] = raw
		}
	}
	merged, err := fab.Merge(v.Recipe, own)
	if err != nil {
		return nil, nil, err
	}
	return merged, &events.RunOrigin{Recipe: &events.RecipeRef{Name: ref.Name, Version: v.Version}, Production: production}, nil
}

// --- lots ---

func (s *Server) handleLotCreate(c *fiber.Ctx) error {
	if s.fab == nil {
		return errNoFab
	}
	fields, err := strictObject(c.Body(), false, "recipe", "kind", "lot_id", "wafers", "wafer_count", "tool_id",
		"priority", "engineering", "simulate_faults")
	if err != nil {
		return err
	}
	var ve process.ValidationError
	cmd := fab.CreateLot{Meta: s.metadata(c)}
	if isNull(fields["recipe"]) {
		ve.Add("recipe", nil, `{"name", "version"}`, "recipe is required")
	} else {
		cmd.Recipe = recipeRef(fields["recipe"], "recipe", &ve)
	}
	if k := stringField(fields, &ve, "kind", 8, false); k != "" {
		if k != string(process.KindIon) && k != string(process.KindRTP) {
			ve.Add("kind", k, "ion, rtp", "unknown process kind")
		}
		cmd.Kind = process.Kind(k)
	}
	cmd.LotID = stringField(fields, &ve, "lot_id", 64, false)
	cmd.ToolID = stringField(fields, &ve, "tool_id", maxToolIDLen, false)
	if raw := fields["priority"]; !isNull(raw) {
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1e6 {
			ve.Add("priority", rawValue(raw), "an integer", "priority must be an integer")
		}
		cmd.Priority = int(f)
	}
	switch wafers, count := fields["wafers"], fields["wafer_count"]; {
	case !isNull(wafers) && !isNull(count):
		ve.Add("wafer_count", rawValue(count), "absent when wafers is given", "give wafers or wafer_count, not both")
	case !isNull(wafers):
		if err := json.Unmarshal(wafers, &cmd.Wafers); err != nil {
			ve.Add("wafers", rawValue(wafers), "a list of 1–25 wafer ids", "wafers must be a list of strings")
		}
	case !isNull(count):
		var n float64
		if err := json.Unmarshal(count, &n); err != nil || n != math.Trunc(n) || n < 1 || n > fab.MaxWafers {
			ve.Add("wafer_count", rawValue(count), "1–25", "wafer_count must be an integer in 1–25")
		} else {
			for i := 1; i <= int(n); i++ {
				cmd.Wafers = append(cmd.Wafers, "W"+twoDigits(i))
			}
		}
	default:
		ve.Add("wafers", nil, "a list of 1–25 wafer ids, or wafer_count", "a lot needs wafers")
	}
	if raw := fields["simulate_faults"]; !isNull(raw) {
		if !s.cfg.AllowFaultInjection {
			ve.Add("simulate_faults", nil, "absent (fault injection is disabled)", "fault injection is disabled on this server")
		} else if err := json.Unmarshal(raw, &cmd.Faults); err != nil {
			ve.Add("simulate_faults", rawValue(raw), `{"<wafer id>": {"kind", "at_progress_pct"}}`, "simulate_faults must map wafer ids to faults")
		} else {
			for w, f := range cmd.Faults {
				if f == nil || !slices.Contains(faultKinds, f.Kind) {
					ve.Add("simulate_faults."+w+".kind", nil, "transient, permanent, interlock", "unknown fault kind")
				} else if f.AtProgress < 0 || f.AtProgress > 100 {
					ve.Add("simulate_faults."+w+".at_progress_pct", f.AtProgress, "0–100", "the fault's progress is out of range")
				}
			}
		}
	}
	eng, err := engineering(c, fields, &ve)
	if err != nil {
		return err
	}
	if err := ve.Err(); err != nil {
		return err
	}
	cmd.Production = !eng && len(cmd.Faults) == 0
	// An Idempotency-Key makes the request repeatable (after a timeout or
	// a crash of the server): the lot's id derives from it, unless given.
	key := c.Get(HeaderIdempotency)
	if err := checkIdempotencyKey(key); err != nil {
		return err
	}
	if key != "" {
		cmd.Repeatable = true
		if cmd.LotID == "" {
			p := principal(c)
			cmd.LotID = "LOT-K" + strings.ToUpper(strings.ReplaceAll(events.DeriveID(p.OrgID, scopedKey(p, key), "lot"), "-", "")[:16])
		}
	}
	check := "/api/lots" // the lot id is the server's to choose
	if cmd.LotID != "" {
		check += "/" + cmd.LotID
	}
	var start fab.LotStart
	err = s.command(c, check, func(ctx context.Context) (err error) {
		start, err = s.fab.CreateLot(ctx, cmd)
		return err
	})
	if err != nil {
		return err
	}
	s.accepted(c, start.Position)
	c.Location("/api/lots/" + start.Lot.LotID)
	if start.Existing {
		return c.Status(fiber.StatusOK).JSON(start)
	}
	return c.Status(fiber.StatusCreated).JSON(start)
}

func twoDigits(i int) string {
	if i < 10 {
		return "0" + strconv.Itoa(i)
	}
	return strconv.Itoa(i)
}

// handleLotList lists lots, newest first, filtered by ?recipe=,
// ?schedule_id= and ?state=active|cancelled|paused, at most ?limit=.
func (s *Server) handleLotList(c *fiber.Ctx) error {
	if s.fabLists == nil {
		return errNoFab
	}
	var ve process.ValidationError
	recipe, schedule := c.Query("recipe"), c.Query("schedule_id")
	if recipe != "" && !fab.ValidID(recipe) {
		ve.Add("recipe", recipe, "a recipe name", "invalid recipe name")
	}
	if schedule != "" && !fab.ValidID(schedule) {
		ve.Add("schedule_id", schedule, "a schedule id", "invalid schedule id")
	}
	state := queryEnum(c, &ve, "state", []string{"active", "paused", "cancelled"})
	limit := queryInt(c, &ve, "limit", math.MaxInt32, 1, math.MaxInt32)
	if err := ve.Err(); err != nil {
		return err
	}
	out := lotList{Lots: []projections.LotSummary{}}
	for _, l := range s.fabLists.Lots(principal(c).OrgID) {
		lotState := map[bool]string{true: "paused", false: "active"}[l.Paused]
		if l.Cancelled {
			lotState = "cancelled"
		}
		switch {
		case len(out.Lots) >= limit:
		case recipe != "" && l.Recipe.Name != recipe, schedule != "" && l.ScheduleID != schedule, state != "" && state != lotState:
		default:
			out.Lots = append(out.Lots, l)
		}
	}
	return c.JSON(out)
}

// lotWafer is one wafer of a lot view.
type lotWafer struct {
	WaferID        string  `json:"wafer_id"`
	Slot           int     `json:"slot"`
	RunID          string  `json:"run_id,omitempty"`
	JobID          string  `json:"job_id,omitempty"`
	Status         string  `json:"status"`
	Progress       float64 `json:"progress"`
	CurrentStep    string  `json:"current_step,omitempty"`
	ErrorMessage   string  `json:"error_message,omitempty"`
	SPCAlertsCount int     `json:"spc_alerts_count"`
	// Retries counts the lot-level retries of the wafer.
	Retries int            `json:"retries"`
	Result  map[string]any `json:"result,omitempty"`
}

// Stat summarises one numeric result over a lot's completed wafers.
type Stat struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// spcPoint is one wafer's value of a result parameter, in slot order: the
// lot's points on that parameter's chart.
type spcPoint struct {
	WaferID string  `json:"wafer_id"`
	RunID   string  `json:"run_id"`
	Value   float64 `json:"value"`
}

type lotView struct {
	fab.Lot
	Status    string                `json:"status"`
	Progress  float64               `json:"progress"`
	Counts    map[string]int        `json:"counts"`
	WaferList []lotWafer            `json:"wafer_runs"`
	Results   map[string]Stat       `json:"results"`
	SPC       map[string][]spcPoint `json:"spc_points"`
}

func (s *Server) handleLotGet(c *fiber.Ctx) error {
	if s.fab == nil {
		return errNoFab
	}
	org := principal(c).OrgID
	lot, err := s.fab.Lot(c.UserContext(), org, c.Params("lot_id"))
	if err != nil {
		return err
	}
	if lot.Members == nil {
		lot.Members = []fab.Member{} // a list, even before the first wafer's run (clients index it)
	}
	v := lotView{Lot: lot, Counts: map[string]int{}, WaferList: []lotWafer{}, Results: map[string]Stat{}, SPC: map[string][]spcPoint{}}
	members := map[string]fab.Member{}
	for _, m := range lot.Members {
		members[m.WaferID] = m
	}
	values := map[string][]float64{}
	for i, w := range lot.Wafers {
		lw := lotWafer{WaferID: w, Slot: i + 1, Status: "not_started", Retries: lot.WaferRetries(w)}
		if reason, ok := lot.Rejected[w]; ok {
			lw.Status, lw.ErrorMessage = projections.StatusFailed, "not started: "+reason
		}
		if m, ok := members[w]; ok {
			lw.RunID, lw.JobID, lw.Status = m.RunID, m.JobID, projections.StatusQueued
			if run, err := s.q.Run(c.UserContext(), org, m.RunID); err == nil && run.OrgID == org {
				lw.Status, lw.Progress, lw.CurrentStep, lw.ErrorMessage = run.Status, run.Progress, run.CurrentStep, run.ErrorMessage
				lw.SPCAlertsCount, lw.JobID = run.SPCAlertsCount, run.JobID
				var result map[string]any
				if run.Status == projections.StatusCompleted && json.Unmarshal(run.Result, &result) == nil {
					lw.Result = result
					for _, k := range sortedKeys(result) {
						if f, ok := number(result[k]); ok {
							values[k] = append(values[k], f)
							v.SPC[k] = append(v.SPC[k], spcPoint{WaferID: w, RunID: m.RunID, Value: f})
						}
					}
				}
			}
		}
		v.Counts[lw.Status]++
		v.Progress += lw.Progress / float64(len(lot.Wafers))
		v.WaferList = append(v.WaferList, lw)
	}
	for k, xs := range values {
		v.Results[k] = stat(xs)
	}
	v.Status = lotStatus(lot, v.Counts)
	return c.JSON(v)
}

// lotStatus: running while any wafer is unfinished, then completed,
// partially_failed, failed or cancelled.
func lotStatus(lot fab.Lot, counts map[string]int) string {
	done := counts[projections.StatusCompleted] + counts[projections.StatusFailed] + counts[projections.StatusCancelled]
	switch {
	case done < len(lot.Wafers) && counts["not_started"] > 0 && lot.Cancelled:
		return projections.StatusCancelled
	case done < len(lot.Wafers) && lot.Paused:
		return projections.StatusPaused
	case done < len(lot.Wafers):
		return projections.StatusRunning
	case counts[projections.StatusCompleted] == len(lot.Wafers):
		return projections.StatusCompleted
	case counts[projections.StatusCompleted] > 0:
		return "partially_failed"
	case counts[projections.StatusCancelled] > 0 && lot.Cancelled:
		return projections.StatusCancelled
	}
	return projections.StatusFailed
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case int:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func stat(xs []float64) Stat {
	st := Stat{N: len(xs), Min: math.Inf(1), Max: math.Inf(-1)}
	for _, x := range xs {
		st.Mean += x / float64(len(xs))
		st.Min, st.Max = min(st.Min, x), max(st.Max, x)
	}
	if len(xs) > 1 {
		var ss float64
		for _, x := range xs {
			ss += (x - st.Mean) * (x - st.Mean)
		}
		st.Std = math.Sqrt(ss / float64(len(xs)-1))
	}
	return st
}

func (s *Server) handleLotCommand(verb string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.fab == nil {
			return errNoFab
		}
		reason, err := optionalReason(c)
		if err != nil {
			return err
		}
		var out fab.LotOutcome
		err = s.command(c, "/api/lots/"+c.Params("lot_id"), func(ctx context.Context) (err error) {
			out, err = s.fab.CommandLot(ctx, fab.LotCommand{LotID: c.Params("lot_id"), Verb: verb, Reason: reason,
				Meta: s.metadata(c)})
			return err
		})
		if err != nil {
			return err
		}
		s.accepted(c, out.Position)
		return c.Status(fiber.StatusAccepted).JSON(out)
	}
}

func (s *Server) handleLotRetry(c *fiber.Ctx) error {
	if s.fab == nil {
		return errNoFab
	}
	fields, err := strictObject(c.Body(), true, "wafers", "reason")
	if err != nil {
		return err
	}
	var ve process.ValidationError
	reason := stringField(fields, &ve, "reason", 1000, false)
	var wafers []string
	if raw := fields["wafers"]; !isNull(raw) {
		if err := json.Unmarshal(raw, &wafers); err != nil || len(wafers) == 0 || len(wafers) > fab.MaxWafers {
			ve.Add("wafers", rawValue(raw), "a list of 1–25 wafer ids of the lot, or absent for every failed wafer", "invalid wafers")
		}
	}
	if err := ve.Err(); err != nil {
		return err
	}
	org := principal(c).OrgID
	out, err := s.fab.RetryLot(c.UserContext(), fab.LotRetry{LotID: c.Params("lot_id"), Wafers: wafers, Reason: reason,
		Failed: func(runID string) bool {
			run, err := s.q.Run(c.UserContext(), org, runID)
			return err == nil && run.OrgID == org && run.Status == projections.StatusFailed
		}, Meta: s.metadata(c)})
	if err != nil {
		return err
	}
	s.accepted(c, out.Position)
	return c.Status(fiber.StatusAccepted).JSON(out)
}

// --- schedules ---

func (s *Server) handleScheduleCreate(c *fiber.Ctx) error {
	if s.fab == nil {
		return errNoFab
	}
	fields, err := strictObject(c.Body(), false, "name", "at", "cron", "recipe", "kind", "wafers", "wafer_count", "tool_id", "priority")
	if err != nil {
		return err
	}
	var ve process.ValidationError
	cmd := fab.CreateSchedule{Meta: s.metadata(c)}
	cmd.Name = stringField(fields, &ve, "name", 100, false)
	cmd.Cron = stringField(fields, &ve, "cron", 100, false)
	if at := stringField(fields, &ve, "at", 64, false); at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			ve.Add("at", at, "an RFC 3339 time (process time)", "invalid time")
		} else {
			t = t.UTC()
			cmd.At = &t
		}
	}
	t := &cmd.Target
	if isNull(fields["recipe"]) {
		ve.Add("recipe", nil, `{"name", "version"}`, "recipe is required")
	} else {
		t.Recipe = recipeRef(fields["recipe"], "recipe", &ve)
	}
	t.Kind = process.Kind(stringField(fields, &ve, "kind", 8, true))
	t.ToolID = stringField(fields, &ve, "tool_id", maxToolIDLen, false)
	if raw := fields["priority"]; !isNull(raw) {
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1e6 {
			ve.Add("priority", rawValue(raw), "an integer", "priority must be an integer")
		}
		t.Priority = int(f)
	}
	if raw := fields["wafers"]; !isNull(raw) {
		if err := json.Unmarshal(raw, &t.Wafers); err != nil {
			ve.Add("wafers", rawValue(raw), "a list of 1–25 wafer ids", "wafers must be a list of strings")
		}
	} else if raw := fields["wafer_count"]; !isNull(raw) {
		var n float64
		if err := json.Unmarshal(raw, &n); err != nil || n != math.Trunc(n) || n < 1 || n > fab.MaxWafers {
			ve.Add("wafer_count", rawValue(raw), "1–25", "wafer_count must be an integer in 1–25")
		} else {
			for i := 1; i <= int(n); i++ {
				t.Wafers = append(t.Wafers, "W"+twoDigits(i))
			}
		}
	}
	if err := ve.Err(); err != nil {
		return err
	}
	var (
		sc  fab.Schedule
		pos uint64
	)
	err = s.command(c, "/api/schedules", func(ctx context.Context) (err error) {
		sc, pos, err = s.fab.CreateSchedule(ctx, cmd)
		return err
	})
	if err != nil {
		return err
	}
	s.accepted(c, pos)
	c.Location("/api/schedules/" + sc.ScheduleID)
	return c.Status(fiber.StatusCreated).JSON(sc)
}

// handleScheduleList lists schedules by id, filtered by ?recipe= and
// ?state=active|paused|done (a one-shot whose time came).
func (s *Server) handleScheduleList(c *fiber.Ctx) error {
	if s.fabLists == nil {
		return errNoFab
	}
	var ve process.ValidationError
	recipe := c.Query("recipe")
	if recipe != "" && !fab.ValidID(recipe) {
		ve.Add("recipe", recipe, "a recipe name", "invalid recipe name")
	}
	state := queryEnum(c, &ve, "state", []string{"active", "paused", "done"})
	if err := ve.Err(); err != nil {
		return err
	}
	out := scheduleList{Schedules: []projections.ScheduleSummary{}}
	for _, sc := range s.fabLists.Schedules(principal(c).OrgID) {
		st := map[bool]string{true: "paused", false: "active"}[sc.Paused]
		if sc.At != nil && sc.Firings+sc.Skips > 0 {
			st = "done"
		}
		if (recipe == "" || sc.Target.Recipe.Name == recipe) && (state == "" || state == st) {
			out.Schedules = append(out.Schedules, sc)
		}
	}
	return c.JSON(out)
}

// firing is one ScheduleFired of a schedule's log.
type firing struct {
	Slot     time.Time `json:"slot"`
	LotID    string    `json:"lot_id,omitempty"`
	Skipped  int       `json:"skipped,omitempty"`
	Time     time.Time `json:"recorded_at"`
	Node     string    `json:"node,omitempty"`
	Revision uint64    `json:"revision"`
	Position uint64    `json:"position"`
}

// skip is one ScheduleFiringSkipped of a schedule's log.
type skip struct {
	Slot     time.Time `json:"slot"`
	Reason   string    `json:"reason"`
	Skipped  int       `json:"skipped,omitempty"`
	Time     time.Time `json:"recorded_at"`
	Node     string    `json:"node,omitempty"`
	Revision uint64    `json:"revision"`
	Position uint64    `json:"position"`
}

func (s *Server) handleScheduleGet(c *fiber.Ctx) error {
	if s.fab == nil {
		return errNoFab
	}
	sc, err := s.fab.Schedule(c.UserContext(), principal(c).OrgID, c.Params("schedule_id"))
	if err != nil {
		return err
	}
	out := scheduleView{Schedule: sc, Firings: []firing{}, Skips: []skip{}}
	if s.store != nil {
		recs, err := s.store.ReadStream(c.UserContext(), events.ScheduleStream(sc.ScheduleID), events.Forwards, 0, 0)
		if err != nil {
			return err
		}
		for _, r := range recs {
			switch events.BaseType(r.Type) {
			case events.TypeScheduleFired, events.TypeScheduleFiringSkipped:
			default:
				continue
			}
			p, err := events.Decode(r)
			if err != nil {
				return err
			}
			switch e := p.(type) {
			case *events.ScheduleFired:
				out.Firings = append(out.Firings, firing{Slot: e.Slot, LotID: e.LotID, Skipped: e.Skipped, Time: r.Time,
					Node: r.Metadata.Node, Revision: r.Revision, Position: r.Position})
			case *events.ScheduleFiringSkipped:
				out.Skips = append(out.Skips, skip{Slot: e.Slot, Reason: e.Reason, Skipped: e.Skipped, Time: r.Time,
					Node: r.Metadata.Node, Revision: r.Revision, Position: r.Position})
			}
		}
		sort.Slice(out.Firings, func(i, j int) bool { return out.Firings[i].Position < out.Firings[j].Position })
		sort.Slice(out.Skips, func(i, j int) bool { return out.Skips[i].Position < out.Skips[j].Position })
	}
	return c.JSON(out)
}

func (s *Server) handleScheduleCommand(verb string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.fab == nil {
			return errNoFab
		}
		if _, err := strictObject(c.Body(), true); err != nil {
			return err
		}
		var (
			sc  fab.Schedule
			pos uint64
		)
		err := s.command(c, "/api/schedules/"+c.Params("schedule_id"), func(ctx context.Context) (err error) {
			sc, pos, err = s.fab.CommandSchedule(ctx, fab.ScheduleCommand{ScheduleID: c.Params("schedule_id"),
				Verb: verb, Meta: s.metadata(c)})
			return err
		})
		if err != nil {
			return err
		}
		s.accepted(c, pos)
		return c.Status(fiber.StatusAccepted).JSON(sc)
	}
}
