package fab

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// Store is what fab needs of the event store.
type Store interface {
	Append(ctx context.Context, stream string, expected events.Expected, evs ...events.Event) (events.AppendResult, error)
	ReadStream(ctx context.Context, stream string, dir events.Direction, from uint64, limit int) ([]events.Record, error)
}

// Runs starts and steers runs (*actors.Service is one).
type Runs interface {
	CreateRun(ctx context.Context, c actors.CreateRun) (actors.Accepted, error)
	CancelRun(ctx context.Context, c actors.RunCommand) (actors.Accepted, error)
	PauseRun(ctx context.Context, c actors.RunCommand) (actors.Accepted, error)
	ResumeRun(ctx context.Context, c actors.RunCommand) (actors.Accepted, error)
	RetryJob(ctx context.Context, c actors.RunCommand) (actors.Accepted, error)
}

// Validator validates a process kind's recipes (actors.EngineFactory is
// one): the same validation runs get.
type Validator interface {
	Validate(recipe json.RawMessage) error
}

// Options configure the Service.
type Options struct {
	// TimeScale is the node's: new schedules run on it (0 counts as 1).
	TimeScale float64
	Node      string
	Logger    *slog.Logger
	// Now is the wall clock (time.Now).
	Now func() time.Time
	// OnWaferRun, when set, is called after a lot wafer's run is created
	// and before the lot records it: a test hook (the crash-safety test
	// kills the server there).
	OnWaferRun func(lotID, waferID string)
}

// Service carries out fab commands: load a stream, decide, append with
// the expected revision.
type Service struct {
	store      Store
	runs       Runs
	validators map[process.Kind]Validator
	opt        Options
}

// NewService returns a Service. It panics on a nil store or runs (wiring).
func NewService(store Store, runs Runs, validators map[process.Kind]Validator, o Options) *Service {
	if store == nil || runs == nil {
		panic("fab.NewService: nil store or runs")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, runs: runs, validators: validators, opt: o}
}

// conflictRetries bounds load-decide-append rounds lost to other writers.
const conflictRetries = 5

// load folds a stream into apply; a missing stream folds nothing.
func (s *Service) load(ctx context.Context, stream string, apply func(events.Record) error) error {
	recs, err := s.store.ReadStream(ctx, stream, events.Forwards, 0, 0)
	if errors.Is(err, events.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	for _, r := range recs {
		if err := apply(r); err != nil {
			return err
		}
	}
	return nil
}

// append writes one event; exists says whether the stream exists at rev.
func (s *Service) append(ctx context.Context, stream string, exists bool, rev uint64, id string, p events.Payload, md events.Metadata) (events.AppendResult, error) {
	md.Node = s.opt.Node
	if md.CorrelationID == "" {
		md.CorrelationID = md.RequestID
	}
	if id == "" {
		id = events.NewID()
	}
	ev, err := events.NewWithID(id, p, md)
	if err != nil {
		return events.AppendResult{}, err
	}
	expected := events.ExpectNoStream
	if exists {
		expected = events.ExpectRevision(rev)
	}
	return s.store.Append(ctx, stream, expected, ev)
}

// SaveRecipe is a new version of a library recipe (version 1 creates it).
type SaveRecipe struct {
	Name    string
	Kind    process.Kind
	Recipe  json.RawMessage
	Comment string
	Meta    events.Metadata
}

// ApproveRecipe releases a version for production runs.
type ApproveRecipe struct {
	Name    string
	Version int
	Comment string
	Meta    events.Metadata
}

// Recipe returns an organisation's recipe, or ErrNotFound.
func (s *Service) Recipe(ctx context.Context, orgID, name string) (Recipe, error) {
	if !namePattern.MatchString(name) {
		return Recipe{}, ErrNotFound
	}
	var r Recipe
	if err := s.load(ctx, events.RecipeStream(orgID, name), r.Apply); err != nil {
		return Recipe{}, err
	}
	if !r.exists || r.OrgID != orgID {
		return Recipe{}, ErrNotFound
	}
	return r, nil
}

// SaveRecipe validates and appends a new version. Returns a
// *process.ValidationError for bad input.
func (s *Service) SaveRecipe(ctx context.Context, c SaveRecipe) (Recipe, uint64, error) {
	for range conflictRetries {
		var r Recipe
		if namePattern.MatchString(c.Name) {
			if err := s.load(ctx, events.RecipeStream(c.Meta.OrgID, c.Name), r.Apply); err != nil {
				return Recipe{}, 0, err
			}
		}
		var validate func(json.RawMessage) error
		if v, ok := s.validators[c.Kind]; ok {
			validate = v.Validate
		}
		ev, err := r.Save(c, validate)
		if err != nil {
			return Recipe{}, 0, err
		}
		res, err := s.append(ctx, events.RecipeStream(c.Meta.OrgID, c.Name), r.exists, r.Revision, "", ev, c.Meta)
		if errors.Is(err, events.ErrConflict) {
			continue // somebody saved a version meanwhile: number ours after it
		}
		if err != nil {
			return Recipe{}, 0, fmt.Errorf("save recipe: %w", err)
		}
		r.Versions = append(r.Versions, Version{Version: ev.Version, Recipe: ev.Recipe, Comment: ev.Comment,
			SavedBy: c.Meta.UserID, SavedAt: s.opt.Now().UTC()})
		r.OrgID, r.Name, r.Kind, r.Revision, r.exists = c.Meta.OrgID, c.Name, c.Kind, res.Revision, true
		return r, res.Position, nil
	}
	return Recipe{}, 0, refuse("the recipe is being changed by others; try again")
}

// ApproveRecipe approves a version. Returns ErrNotFound or a *RuleError.
func (s *Service) ApproveRecipe(ctx context.Context, c ApproveRecipe) (Recipe, uint64, error) {
	for range conflictRetries {
		r, err := s.Recipe(ctx, c.Meta.OrgID, c.Name)
		if err != nil {
			return Recipe{}, 0, err
		}
		ev, err := r.Approve(c)
		if err != nil {
			return Recipe{}, 0, err
		}
		res, err := s.append(ctx, events.RecipeStream(c.Meta.OrgID, c.Name), true, r.Revision, "", ev, c.Meta)
		if errors.Is(err, events.ErrConflict) {
			continue
		}
		if err != nil {
			return Recipe{}, 0, fmt.Errorf("approve recipe: %w", err)
		}
		now := s.opt.Now().UTC()
		v := r.version(c.Version)
		v.Approved, v.ApprovedBy, v.ApprovedAt, v.ApprovalComment = true, c.Meta.UserID, &now, c.Comment
		r.Revision = res.Revision
		return r, res.Position, nil
	}
	return Recipe{}, 0, refuse("the recipe is being changed by others; try again")
}

// Resolve finds the version of an organisation's recipe a run of kind
// uses (version 0: latest approved for production, else latest).
func (s *Service) Resolve(ctx context.Context, orgID string, kind process.Kind, ref events.RecipeRef, production bool) (Version, error) {
	r, err := s.Recipe(ctx, orgID, ref.Name)
	if err != nil {
		return Version{}, err
	}
	if kind != "" && r.Kind != kind {
		return Version{}, refuse(fmt.Sprintf("recipe %s is an %s recipe, not %s", r.Name, r.Kind, kind))
	}
	return r.Resolve(ref.Version, production)
}

// Merge returns a version's recipe with a run's own fields (wafer_id,
// lot_id, comments, tool_id, …) added: the body a run is created with.
func Merge(recipe json.RawMessage, run map[string]json.RawMessage) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(recipe, &fields); err != nil {
		return nil, fmt.Errorf("merge recipe: %w", err)
	}
	for k, v := range run {
		fields[k] = v
	}
	return json.Marshal(fields)
}

// CreateLot starts a lot: one run per wafer.
type CreateLot struct {
	LotID      string // optional; generated when empty
	Kind       process.Kind
	Recipe     events.RecipeRef
	Wafers     []string
	ToolID     string
	Priority   int
	Production bool
	// Faults injects a fault into some wafers' runs (HIL testing).
	Faults     map[string]*process.Fault
	ScheduleID string
	FiredSlot  *time.Time
	// Repeatable: the client may send this request again (it gave an
	// Idempotency-Key, from which LotID derives). A lot that exists with
	// the same request is then answered as it is, its missing runs
	// created; with another request it is a *process.ValidationError.
	Repeatable bool
	Meta       events.Metadata
}

// WaferStart is how the creation of one wafer's run went.
type WaferStart struct {
	WaferID string `json:"wafer_id"`
	Slot    int    `json:"slot"`
	RunID   string `json:"run_id,omitempty"`
	JobID   string `json:"job_id,omitempty"`
	Error   string `json:"error,omitempty"`
}

// LotStart answers CreateLot.
type LotStart struct {
	Lot      Lot          `json:"lot"`
	Wafers   []WaferStart `json:"wafers"`
	Position uint64       `json:"position"`
	// Existing: a repeated request found the lot its first one started.
	Existing bool `json:"existing,omitempty"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}[A-Za-z0-9_])?$`)

// ValidID reports whether s may name a lot or wafer.
func ValidID(s string) bool { return idPattern.MatchString(s) }

func (c CreateLot) validate() error {
	var ve process.ValidationError
	if c.LotID != "" && !ValidID(c.LotID) {
		ve.Add("lot_id", c.LotID, "1–64 letters, digits, '-' or '_'", "invalid lot id")
	}
	if !namePattern.MatchString(c.Recipe.Name) {
		ve.Add("recipe.name", c.Recipe.Name, "1–64 letters, digits or underscores", "invalid recipe name")
	}
	if c.Recipe.Version < 0 {
		ve.Add("recipe.version", c.Recipe.Version, "≥ 1, or absent for the latest approved", "invalid version")
	}
	switch n := len(c.Wafers); {
	case n == 0:
		ve.Add("wafers", nil, "1–25 wafer ids, or wafer_count 1–25", "a lot needs wafers")
	case n > MaxWafers:
		ve.Add("wafers", n, "at most 25 wafers", "too many wafers")
	}
	seen := map[string]bool{}
	for i, w := range c.Wafers {
		switch {
		case !ValidID(w):
			ve.Add(fmt.Sprintf("wafers[%d]", i), w, "1–64 letters, digits, '-' or '_'", "invalid wafer id")
		case seen[w]:
			ve.Add(fmt.Sprintf("wafers[%d]", i), w, "unique wafer ids", "wafer given twice")
		}
		seen[w] = true
	}
	for w := range c.Faults {
		if !seen[w] {
			ve.Add("simulate_faults."+w, nil, "a wafer of the lot", "no such wafer in the lot")
		}
	}
	return ve.Err()
}

func newLotID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "LOT-" + now.UTC().Format("20060102") + "-" + strings.ToUpper(hex.EncodeToString(b))
}

// Lot returns an organisation's lot, or ErrNotFound.
func (s *Service) Lot(ctx context.Context, orgID, lotID string) (Lot, error) {
	if !ValidID(lotID) {
		return Lot{}, ErrNotFound
	}
	var l Lot
	if err := s.load(ctx, events.LotStream(lotID), l.Apply); err != nil {
		return Lot{}, err
	}
	if !l.exists || l.OrgID != orgID {
		return Lot{}, ErrNotFound
	}
	return l, nil
}

// CreateLot records the lot, then creates its wafers' runs. The lot's
// intent is recorded first, whole (LotRequested with its wafers), and each
// wafer's run is created under a key derived from the lot and the wafer,
// so a crash part way leaves a lot that CompleteLot (the node's lot
// reconciler) finishes, without a wafer twice. A wafer whose run cannot be
// created is reported and the others go on. Returns a
// *process.ValidationError, ErrNotFound (recipe), or a *RuleError
// (unapproved version for production, an existing lot id).
func (s *Service) CreateLot(ctx context.Context, c CreateLot) (LotStart, error) {
	if err := c.validate(); err != nil {
		return LotStart{}, err
	}
	v, err := s.Resolve(ctx, c.Meta.OrgID, c.Kind, c.Recipe, c.Production)
	if err != nil {
		return LotStart{}, err
	}
	r, err := s.Recipe(ctx, c.Meta.OrgID, c.Recipe.Name)
	if err != nil {
		return LotStart{}, err
	}
	redrive := c.LotID != "" && c.ScheduleID != ""
	if c.LotID == "" {
		c.LotID = newLotID(s.opt.Now())
	}
	ref := events.RecipeRef{Name: c.Recipe.Name, Version: v.Version}
	req := &events.LotRequested{LotID: c.LotID, OrgID: c.Meta.OrgID, Kind: r.Kind, Recipe: ref, Wafers: c.Wafers,
		ToolID: c.ToolID, Priority: c.Priority, Production: c.Production, ScheduleID: c.ScheduleID, FiredSlot: c.FiredSlot,
		Faults: c.Faults}
	id := ""
	if c.ScheduleID != "" {
		id = events.DeriveID(c.LotID, "LotRequested")
	}
	res, err := s.append(ctx, events.LotStream(c.LotID), false, 0, id, req, c.Meta)
	switch {
	case errors.Is(err, events.ErrConflict) && c.Repeatable:
		return s.repeatLot(ctx, c, req)
	case errors.Is(err, events.ErrConflict) && !redrive:
		return LotStart{}, refuse(fmt.Sprintf("lot %s exists", c.LotID))
	case err != nil && !errors.Is(err, events.ErrConflict):
		return LotStart{}, fmt.Errorf("create lot: %w", err)
	}
	lot, err := s.Lot(ctx, c.Meta.OrgID, c.LotID)
	if err != nil {
		return LotStart{}, err
	}
	start, err := s.complete(ctx, &lot, c.Meta)
	start.Position = max(start.Position, res.Position)
	return start, err
}

// repeatLot answers a repeated lot request: the lot its first request
// started, completed if a crash cut that short.
func (s *Service) repeatLot(ctx context.Context, c CreateLot, req *events.LotRequested) (LotStart, error) {
	lot, err := s.Lot(ctx, c.Meta.OrgID, c.LotID)
	if errors.Is(err, ErrNotFound) {
		return LotStart{}, refuse(fmt.Sprintf("lot %s exists", c.LotID)) // another organisation's
	}
	if err != nil {
		return LotStart{}, err
	}
	// The recipe as asked for: without a version, the latest approved one
	// then (a newer one approved since does not make the request another).
	same := lot.Kind == req.Kind && lot.Recipe.Name == c.Recipe.Name && (c.Recipe.Version == 0 || c.Recipe.Version == lot.Recipe.Version) &&
		slices.Equal(lot.Wafers, req.Wafers) &&
		lot.ToolID == req.ToolID && lot.Priority == req.Priority && lot.Production == req.Production
	if !same {
		return LotStart{}, validation("Idempotency-Key", nil, "a new key for a different request",
			"the key was used for a different lot request (another recipe, version or wafers)")
	}
	start, err := s.CompleteLot(ctx, lot.OrgID, lot.LotID)
	if err != nil {
		return LotStart{}, err
	}
	if start.Wafers == nil { // nothing was missing: report the wafers as they are
		for i, w := range lot.Wafers {
			ws := WaferStart{WaferID: w, Slot: i + 1, Error: lot.Rejected[w]}
			if m := lot.member(w); m != nil {
				ws.RunID, ws.JobID = m.RunID, m.JobID
			}
			start.Wafers = append(start.Wafers, ws)
		}
	}
	start.Existing = true
	return start, nil
}

// CompleteLot creates the runs a lot still lacks: its creation was cut
// short (the server crashed, the store was away). The runs are created as
// the person who asked for the lot, from the version the lot recorded,
// under the same per-wafer keys, so a run created before the crash is
// found, not made again. A lot that lacks nothing, or is cancelled, is
// left as it is.
func (s *Service) CompleteLot(ctx context.Context, orgID, lotID string) (LotStart, error) {
	lot, err := s.Lot(ctx, orgID, lotID)
	if err != nil {
		return LotStart{}, err
	}
	if len(lot.Missing()) == 0 || lot.Cancelled {
		return LotStart{Lot: lot}, nil
	}
	md := lot.creator
	md.CausationID = lot.requestID
	if md.CorrelationID == "" {
		md.CorrelationID = lot.requestID
	}
	return s.complete(ctx, &lot, md)
}

// complete creates the run of every wafer of lot that has none, as md.
func (s *Service) complete(ctx context.Context, lot *Lot, md events.Metadata) (LotStart, error) {
	var start LotStart
	var v Version
	if len(lot.Missing()) > 0 && !lot.Cancelled {
		r, err := s.Recipe(ctx, lot.OrgID, lot.Recipe.Name)
		if err != nil {
			return LotStart{}, err
		}
		if lot.Recipe.Version < 1 || lot.Recipe.Version > len(r.Versions) {
			return LotStart{}, fmt.Errorf("lot %s: recipe %s has no version %d", lot.LotID, r.Name, lot.Recipe.Version)
		}
		v = r.Versions[lot.Recipe.Version-1]
	}
	for i, w := range lot.Wafers {
		ws := WaferStart{WaferID: w, Slot: i + 1}
		switch m := lot.member(w); {
		case m != nil:
			ws.RunID, ws.JobID = m.RunID, m.JobID
		case lot.Rejected[w] != "":
			ws.Error = lot.Rejected[w]
		case lot.Cancelled:
			ws.Error = "lot cancelled"
		default:
			pos, err := s.startWafer(ctx, lot, v, md, &ws)
			if err != nil {
				ws.Error = err.Error()
				s.opt.Logger.Warn("lot wafer not started", "lot_id", lot.LotID, "wafer_id", w, "err", err)
				if permanent(err) {
					pos = max(pos, s.reject(ctx, lot, ws, md))
				}
			}
			start.Position = max(start.Position, pos)
		}
		start.Wafers = append(start.Wafers, ws)
	}
	start.Lot = *lot
	return start, nil
}

// permanent reports whether a run's creation failed for a reason trying
// again does not change.
func permanent(err error) bool {
	var ve *process.ValidationError
	return errors.As(err, &ve) || errors.Is(err, actors.ErrFaultInjectionDisabled)
}

// reject records that a wafer's run cannot be created, so the lot can
// finish without it.
func (s *Service) reject(ctx context.Context, lot *Lot, ws WaferStart, md events.Metadata) uint64 {
	ev := &events.LotWaferRejected{LotID: lot.LotID, WaferID: ws.WaferID, Slot: ws.Slot, Reason: ws.Error}
	for range conflictRetries {
		res, err := s.append(ctx, events.LotStream(lot.LotID), true, lot.Revision, "", ev, md)
		if err == nil {
			if lot.Rejected == nil {
				lot.Rejected = map[string]string{}
			}
			lot.Rejected[ws.WaferID], lot.Revision = ws.Error, res.Revision
			return res.Position
		}
		if !errors.Is(err, events.ErrConflict) {
			break
		}
		fresh, err := s.Lot(ctx, lot.OrgID, lot.LotID)
		if err != nil {
			break
		}
		if *lot = fresh; lot.member(ws.WaferID) != nil || lot.Rejected[ws.WaferID] != "" {
			return 0
		}
	}
	return 0
}

// startWafer creates one wafer's run (idempotently: the key derives from
// the lot and the wafer, so a re-drive after a crash finds the run created
// before) and records it in the lot, once: the record is appended with the
// lot's expected revision, and a writer that loses finds the wafer
// recorded by the other.
func (s *Service) startWafer(ctx context.Context, lot *Lot, v Version, md events.Metadata, ws *WaferStart) (uint64, error) {
	wafer, _ := json.Marshal(ws.WaferID)
	lotID, _ := json.Marshal(lot.LotID)
	body, err := Merge(v.Recipe, map[string]json.RawMessage{"wafer_id": wafer, "lot_id": lotID})
	if err != nil {
		return 0, err
	}
	ref := events.RecipeRef{Name: lot.Recipe.Name, Version: v.Version}
	acc, err := s.runs.CreateRun(ctx, actors.CreateRun{Kind: lot.Kind, Recipe: body, ToolID: lot.ToolID, Priority: lot.Priority,
		IdempotencyKey: WaferKey(lot.LotID, ws.WaferID), Fault: lot.faults[ws.WaferID],
		Origin: &events.RunOrigin{Recipe: &ref, Production: lot.Production, LotID: lot.LotID, WaferID: ws.WaferID,
			Slot: ws.Slot, ScheduleID: lot.ScheduleID, FiredSlot: lot.firedSlot},
		Meta: md})
	if err != nil {
		return 0, err
	}
	ws.RunID, ws.JobID = acc.RunID, acc.JobID
	pos := acc.Position
	if s.opt.OnWaferRun != nil {
		s.opt.OnWaferRun(lot.LotID, ws.WaferID)
	}
	ev := &events.LotWaferStarted{LotID: lot.LotID, WaferID: ws.WaferID, Slot: ws.Slot, RunID: acc.RunID, JobID: acc.JobID}
	for range conflictRetries {
		res, err := s.append(ctx, events.LotStream(lot.LotID), true, lot.Revision, "", ev, md)
		if err == nil {
			lot.Members = append(lot.Members, Member{WaferID: ws.WaferID, Slot: ws.Slot, RunID: acc.RunID, JobID: acc.JobID})
			lot.Revision = res.Revision
			return max(pos, res.Position), nil
		}
		if !errors.Is(err, events.ErrConflict) {
			return pos, fmt.Errorf("record wafer %s: %w", ws.WaferID, err)
		}
		// Another writer came in between: a lot command, or another
		// drive of this lot (the reconciler) that recorded this wafer.
		// A cancel stops the run just created too.
		fresh, err := s.Lot(ctx, lot.OrgID, lot.LotID)
		if err != nil {
			return pos, err
		}
		*lot = fresh
		if lot.member(ws.WaferID) != nil {
			return pos, nil
		}
		if lot.Cancelled {
			_, _ = s.runs.CancelRun(ctx, actors.RunCommand{RunID: acc.RunID, Reason: "lot cancelled", Meta: md})
		}
	}
	return pos, fmt.Errorf("record wafer %s: the lot keeps changing", ws.WaferID)
}

// WaferKey is the idempotency key of a lot wafer's run: whoever creates
// it, and however often, it names one run.
func WaferKey(lotID, waferID string) string { return "lot/" + lotID + "/" + waferID }

// LotCommand is a lot-level cancel, pause or resume.
type LotCommand struct {
	LotID  string
	Verb   string // LotCancel, LotPause, LotResume
	Reason string
	Meta   events.Metadata
}

// LotOutcome answers a lot command: what each wafer's run said.
type LotOutcome struct {
	Lot      Lot          `json:"lot"`
	Wafers   []WaferStart `json:"wafers"` // Error: why a wafer's run refused (a finished run)
	Position uint64       `json:"position"`
}

// CommandLot records a lot command and carries it out on every wafer's
// run. Runs that do not take it (finished ones) are reported, not errors.
func (s *Service) CommandLot(ctx context.Context, c LotCommand) (LotOutcome, error) {
	do := map[string]func(context.Context, actors.RunCommand) (actors.Accepted, error){
		LotCancel: s.runs.CancelRun, LotPause: s.runs.PauseRun, LotResume: s.runs.ResumeRun}[c.Verb]
	if do == nil {
		return LotOutcome{}, fmt.Errorf("lot command %q: unknown verb", c.Verb)
	}
	return s.lotOperation(ctx, c.LotID, c.Verb+" lot", c.Meta,
		func(lot *Lot) (events.Payload, []Member, error) {
			ev, err := lot.Command(c.Verb, c.Reason)
			return ev, lot.Members, err
		},
		func(m Member) (WaferStart, uint64) {
			ws := WaferStart{WaferID: m.WaferID, Slot: m.Slot, RunID: m.RunID, JobID: m.JobID}
			acc, err := do(ctx, actors.RunCommand{RunID: m.RunID, Reason: c.Reason, Meta: c.Meta})
			if err != nil {
				ws.Error = err.Error()
			}
			return ws, acc.Position
		})
}

// LotRetry runs some wafers of a lot again.
type LotRetry struct {
	LotID string
	// Wafers to retry; none: every wafer whose run failed (failed says
	// which runs did).
	Wafers []string
	Failed func(runID string) bool
	Reason string
	Meta   events.Metadata
}

// RetryLot records a lot-level retry and retries each wafer's run (a new
// job of the same run, without the fault the first job injected). A run
// that does not take it (it did not fail or was not cancelled) is
// reported, not an error. Returns a *RuleError when no wafer failed (or
// the lot is cancelled) and a *process.ValidationError for a wafer that
// is not the lot's.
func (s *Service) RetryLot(ctx context.Context, c LotRetry) (LotOutcome, error) {
	return s.lotOperation(ctx, c.LotID, "retry lot", c.Meta,
		func(lot *Lot) (events.Payload, []Member, error) {
			wafers := c.Wafers
			if len(wafers) == 0 && c.Failed != nil {
				for _, m := range lot.Members {
					if c.Failed(m.RunID) {
						wafers = append(wafers, m.WaferID)
					}
				}
			}
			ev, err := lot.Retry(wafers, c.Reason)
			if err != nil {
				return nil, nil, err
			}
			members := make([]Member, len(wafers))
			for i, w := range wafers {
				members[i] = *lot.member(w)
			}
			return ev, members, nil
		},
		func(m Member) (WaferStart, uint64) {
			ws := WaferStart{WaferID: m.WaferID, Slot: m.Slot, RunID: m.RunID}
			acc, err := s.runs.RetryJob(ctx, actors.RunCommand{RunID: m.RunID, Reason: c.Reason, Meta: c.Meta})
			if err != nil {
				ws.Error = err.Error()
			}
			ws.JobID = cmp.Or(acc.JobID, m.JobID)
			return ws, acc.Position
		})
}

// lotOperation is the shape every lot-level command shares: decide the
// lot's event on its current state (which also names the wafers it
// concerns), record it with the lot's revision expected (deciding again
// when another writer moved the lot meanwhile), then carry it out on each
// wafer's run. What a run answers is reported per wafer, not an error:
// the lot's event is on record either way.
func (s *Service) lotOperation(ctx context.Context, lotID, what string, md events.Metadata,
	decide func(*Lot) (events.Payload, []Member, error),
	carryOut func(Member) (WaferStart, uint64)) (LotOutcome, error) {
	for range conflictRetries {
		lot, err := s.Lot(ctx, md.OrgID, lotID)
		if err != nil {
			return LotOutcome{}, err
		}
		ev, members, err := decide(&lot)
		if err != nil {
			return LotOutcome{}, err
		}
		res, err := s.append(ctx, events.LotStream(lot.LotID), true, lot.Revision, "", ev, md)
		if errors.Is(err, events.ErrConflict) {
			continue
		}
		if err != nil {
			return LotOutcome{}, fmt.Errorf("%s: %w", what, err)
		}
		out := LotOutcome{Position: res.Position}
		for _, m := range members {
			ws, pos := carryOut(m)
			out.Position = max(out.Position, pos)
			out.Wafers = append(out.Wafers, ws)
		}
		if err := lot.Apply(events.Record{Type: events.VersionedType(ev.EventType()), Data: mustJSON(ev), Revision: res.Revision}); err != nil {
			return LotOutcome{}, err
		}
		out.Lot = lot
		return out, nil
	}
	return LotOutcome{}, refuse("the lot is being changed by others; try again")
}

// HoldLot keeps a paused lot paused: a wafer that started running since
// the lot was paused (its slot came free: the run actor pauses only
// running runs, so queued wafers could not be paused with the lot) is
// paused now, as the person who paused the lot. running reports whether a
// run is running. Returns the runs it paused.
func (s *Service) HoldLot(ctx context.Context, orgID, lotID string, running func(runID string) bool) ([]string, error) {
	lot, err := s.Lot(ctx, orgID, lotID)
	if err != nil || !lot.Paused || lot.Cancelled {
		return nil, err
	}
	var paused []string
	for _, m := range lot.Members {
		if !running(m.RunID) {
			continue
		}
		md := lot.pausedBy
		md.RequestID = ""
		if _, err := s.runs.PauseRun(ctx, actors.RunCommand{RunID: m.RunID, Reason: "lot " + lot.LotID + " is paused", Meta: md}); err == nil {
			paused = append(paused, m.RunID)
		}
	}
	return paused, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // our own event types always encode
	}
	return b
}

// CreateSchedule schedules a recipe or lot at a process time or on a cron
// expression.
type CreateSchedule struct {
	Name   string
	At     *time.Time
	Cron   string
	Target events.ScheduleTarget
	Meta   events.Metadata
}

// ScheduleCommand pauses or resumes a schedule.
type ScheduleCommand struct {
	ScheduleID string
	Verb       string // LotPause or LotResume
	Meta       events.Metadata
}

// CreateSchedule validates and records a schedule. The target recipe must
// exist with the kind given; approval is checked when it fires.
func (s *Service) CreateSchedule(ctx context.Context, c CreateSchedule) (Schedule, uint64, error) {
	var ve process.ValidationError
	if len(c.Name) > 100 {
		ve.Add("name", nil, "at most 100 characters", "name is too long")
	}
	switch {
	case (c.At == nil) == (c.Cron == ""):
		ve.Add("cron", c.Cron, "exactly one of at (RFC 3339) and cron (five fields)", "give a time or a cron expression")
	case c.Cron != "":
		if _, err := parseCron(c.Cron); err != nil {
			ve.Add("cron", c.Cron, "five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @every 5m", err.Error())
		}
	}
	t := c.Target
	if t.Kind != process.KindIon && t.Kind != process.KindRTP {
		ve.Add("target.kind", string(t.Kind), "ion, rtp", "unknown process kind")
	}
	lot := CreateLot{Recipe: t.Recipe, Wafers: t.Wafers}
	if len(t.Wafers) == 0 {
		lot.Wafers = []string{"W01"} // a single run: only the recipe is checked
	}
	if err := lot.validate(); err != nil {
		var lve *process.ValidationError
		if errors.As(err, &lve) {
			for _, f := range lve.Fields {
				f.Field = "target." + f.Field
				ve.Fields = append(ve.Fields, f)
			}
		}
	}
	if err := ve.Err(); err != nil {
		return Schedule{}, 0, err
	}
	if _, err := s.Resolve(ctx, c.Meta.OrgID, t.Kind, events.RecipeRef{Name: t.Recipe.Name}, false); err != nil {
		if errors.Is(err, ErrNotFound) {
			return Schedule{}, 0, validation("target.recipe.name", t.Recipe.Name, "a recipe of the library", "no such recipe")
		}
		return Schedule{}, 0, err
	}
	now := s.opt.Now().UTC()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	ev := &events.ScheduleCreated{ScheduleID: "sch_" + hex.EncodeToString(b), OrgID: c.Meta.OrgID, Name: c.Name, At: c.At,
		Cron: c.Cron, Target: t, Epoch: now, TimeScale: s.opt.TimeScale}
	res, err := s.append(ctx, events.ScheduleStream(ev.ScheduleID), false, 0, "", ev, c.Meta)
	if err != nil {
		return Schedule{}, 0, fmt.Errorf("create schedule: %w", err)
	}
	var sc Schedule
	if err := sc.Apply(events.Record{ID: "", Type: events.VersionedType(ev.EventType()), Data: mustJSON(ev), Time: now,
		Revision: res.Revision, Metadata: c.Meta}); err != nil {
		return Schedule{}, 0, err
	}
	return sc, res.Position, nil
}

func validation(field string, value any, allowed, msg string) error {
	ve := &process.ValidationError{}
	ve.Add(field, value, allowed, msg)
	return ve
}

// Schedule returns an organisation's schedule ("" for any organisation:
// the worker), or ErrNotFound.
func (s *Service) Schedule(ctx context.Context, orgID, id string) (Schedule, error) {
	if !ValidID(id) {
		return Schedule{}, ErrNotFound
	}
	var sc Schedule
	if err := s.load(ctx, events.ScheduleStream(id), sc.Apply); err != nil {
		return Schedule{}, err
	}
	if !sc.exists || (orgID != "" && sc.OrgID != orgID) {
		return Schedule{}, ErrNotFound
	}
	return sc, nil
}

// CommandSchedule pauses or resumes a schedule.
func (s *Service) CommandSchedule(ctx context.Context, c ScheduleCommand) (Schedule, uint64, error) {
	for range conflictRetries {
		sc, err := s.Schedule(ctx, c.Meta.OrgID, c.ScheduleID)
		if err != nil {
			return Schedule{}, 0, err
		}
		ev, err := sc.Command(c.Verb)
		if err != nil {
			return Schedule{}, 0, err
		}
		res, err := s.append(ctx, events.ScheduleStream(sc.ScheduleID), true, sc.Revision, "", ev, c.Meta)
		if errors.Is(err, events.ErrConflict) {
			continue // a firing came in between
		}
		if err != nil {
			return Schedule{}, 0, fmt.Errorf("%s schedule: %w", c.Verb, err)
		}
		if err := sc.Apply(events.Record{Type: events.VersionedType(ev.EventType()), Data: mustJSON(ev),
			Time: s.opt.Now().UTC(), Revision: res.Revision, Metadata: c.Meta}); err != nil {
			return Schedule{}, 0, err
		}
		return sc, res.Position, nil
	}
	return Schedule{}, 0, refuse("the schedule is being changed by others; try again")
}

// Refresh brings a schedule the caller keeps up to date with its stream,
// reading only what it has not applied yet. Set ScheduleID on a new one.
func (s *Service) Refresh(ctx context.Context, sc *Schedule) error {
	from := uint64(0)
	if sc.exists {
		from = sc.Revision + 1
	}
	recs, err := s.store.ReadStream(ctx, events.ScheduleStream(sc.ScheduleID), events.Forwards, from, 0)
	if errors.Is(err, events.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("read schedule %s: %w", sc.ScheduleID, err)
	}
	for _, r := range recs {
		if err := sc.Apply(r); err != nil {
			return err
		}
	}
	return nil
}

// FireDue fires the slot of schedule sc (kept by the caller, refreshed
// here) due at wall time now, if any, claiming it with an expected-revision
// append: of two nodes (or a node and its restarted self) only one records
// a slot, and only the one that recorded it starts the runs. A slot whose
// target cannot start (no approved version of the recipe) is recorded as
// skipped, with the reason, instead. Returns the slot fired or skipped
// (nil: none due, or another writer won).
func (s *Service) FireDue(ctx context.Context, sc *Schedule, now time.Time) (*time.Time, error) {
	if err := s.Refresh(ctx, sc); err != nil {
		return nil, err
	}
	slot, _, ok := sc.Due(now)
	if !ok {
		return nil, nil
	}
	md := sc.creator
	md.RequestID, md.CausationID = "", ""
	t := sc.Target
	if _, err := s.Resolve(ctx, sc.OrgID, t.Kind, t.Recipe, true); err != nil {
		var re *RuleError
		switch {
		case errors.As(err, &re):
		case errors.Is(err, ErrNotFound):
			err = refuse(fmt.Sprintf("recipe %s is not in the library", t.Recipe.Name))
		default:
			return nil, err // the store: try again at the next look
		}
		return s.skip(ctx, sc, now, slot, err.Error(), md)
	}
	lotID := ""
	if len(t.Wafers) > 0 {
		lotID = "LOT-" + strings.TrimPrefix(sc.ScheduleID, "sch_") + "-" + slot.UTC().Format("20060102T150405")
	}
	ev, err := sc.Fire(now, slot, lotID)
	if err != nil {
		return nil, nil
	}
	evID := events.DeriveID(sc.ScheduleID, slot.UTC().Format(time.RFC3339Nano), "ScheduleFired")
	res, err := s.append(ctx, events.ScheduleStream(sc.ScheduleID), true, sc.Revision, evID, ev, md)
	if errors.Is(err, events.ErrConflict) {
		return nil, nil // another node fired it, or somebody paused the schedule: the next refresh shows which
	}
	if err != nil {
		return nil, fmt.Errorf("fire schedule %s: %w", sc.ScheduleID, err)
	}
	s.opt.Logger.Info("schedule fired", "schedule_id", sc.ScheduleID, "slot", slot, "skipped", ev.Skipped,
		"lot_id", lotID, "position", res.Position)
	if err := s.Refresh(ctx, sc); err != nil {
		return &slot, err
	}
	if err := s.start(ctx, *sc); err != nil {
		return &slot, fmt.Errorf("start schedule %s slot %s: %w", sc.ScheduleID, slot.Format(time.RFC3339), err)
	}
	return &slot, nil
}

// skip records that slot starts nothing, for reason, claiming the slot as
// a firing would.
func (s *Service) skip(ctx context.Context, sc *Schedule, now, slot time.Time, reason string, md events.Metadata) (*time.Time, error) {
	ev, err := sc.Skip(now, slot, reason)
	if err != nil {
		return nil, nil
	}
	evID := events.DeriveID(sc.ScheduleID, slot.UTC().Format(time.RFC3339Nano), "ScheduleFiringSkipped")
	res, err := s.append(ctx, events.ScheduleStream(sc.ScheduleID), true, sc.Revision, evID, ev, md)
	if errors.Is(err, events.ErrConflict) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("skip schedule %s slot: %w", sc.ScheduleID, err)
	}
	s.opt.Logger.Warn("schedule firing skipped", "schedule_id", sc.ScheduleID, "slot", slot, "reason", reason,
		"position", res.Position)
	return &slot, s.Refresh(ctx, sc)
}

// Redrive starts what the schedule's last firing should have started,
// again: runs are created with idempotency keys and lots under derived
// ids, so this creates only what a crash between the claim and the
// creation left out.
func (s *Service) Redrive(ctx context.Context, sc *Schedule) error {
	if err := s.Refresh(ctx, sc); err != nil || sc.LastFired == nil {
		return err
	}
	return s.start(ctx, *sc)
}

// start creates the last firing's run or lot, as the schedule's creator.
func (s *Service) start(ctx context.Context, sc Schedule) error {
	slot := *sc.LastFired
	md := sc.creator
	md.CausationID, md.RequestID, md.CorrelationID = sc.lastID, "", sc.lastID
	t := sc.Target
	if len(t.Wafers) > 0 {
		_, err := s.CreateLot(ctx, CreateLot{LotID: sc.LastLotID, Kind: t.Kind, Recipe: t.Recipe, Wafers: t.Wafers,
			ToolID: t.ToolID, Priority: t.Priority, Production: true, ScheduleID: sc.ScheduleID, FiredSlot: &slot, Meta: md})
		return err
	}
	v, err := s.Resolve(ctx, sc.OrgID, t.Kind, t.Recipe, true)
	if err != nil {
		return err
	}
	ref := events.RecipeRef{Name: t.Recipe.Name, Version: v.Version}
	_, err = s.runs.CreateRun(ctx, actors.CreateRun{Kind: t.Kind, Recipe: bytes.Clone(v.Recipe), ToolID: t.ToolID,
		Priority: t.Priority, IdempotencyKey: "schedule/" + sc.ScheduleID + "/" + slot.UTC().Format(time.RFC3339Nano),
		Origin: &events.RunOrigin{Recipe: &ref, Production: true, ScheduleID: sc.ScheduleID, FiredSlot: &slot}, Meta: md})
	return err
}
