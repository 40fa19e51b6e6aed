package fab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// namePattern is a recipe name: letters, digits and underscores. No '-',
// so recipe-<org>-<name> names one organisation's recipe and no other.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// runOnlyFields are set per run, never in a library recipe: where and on
// which wafer it runs, how urgently, and injected faults.
var runOnlyFields = []string{"wafer_id", "lot_id", "priority", "simulate_fault", "simulate_disturbance", "recipe", "engineering"}

// Version is one saved version of a library recipe.
type Version struct {
	Version         int             `json:"version"`
	Recipe          json.RawMessage `json:"recipe"`
	Comment         string          `json:"comment,omitempty"`
	SavedBy         string          `json:"saved_by"`
	SavedAt         time.Time       `json:"saved_at"`
	Approved        bool            `json:"approved"`
	ApprovedBy      string          `json:"approved_by,omitempty"`
	ApprovedAt      *time.Time      `json:"approved_at,omitempty"`
	ApprovalComment string          `json:"approval_comment,omitempty"`
}

// Recipe is a named recipe of an organisation with its versions, folded
// from its stream.
type Recipe struct {
	OrgID    string       `json:"org_id"`
	Name     string       `json:"name"`
	Kind     process.Kind `json:"kind"`
	Versions []Version    `json:"versions"`
	// Revision is the stream revision of the last applied event.
	Revision uint64 `json:"revision"`
	exists   bool
}

// Apply folds one event of the recipe's stream.
func (r *Recipe) Apply(rec events.Record) error {
	p, err := events.Decode(rec)
	if err != nil {
		return err
	}
	switch e := p.(type) {
	case *events.RecipeVersionSaved:
		r.OrgID, r.Name, r.Kind, r.exists = e.OrgID, e.Name, e.Kind, true
		r.Versions = append(r.Versions, Version{Version: e.Version, Recipe: e.Recipe, Comment: e.Comment,
			SavedBy: rec.Metadata.UserID, SavedAt: rec.Time})
	case *events.RecipeVersionApproved:
		if v := r.version(e.Version); v != nil {
			at := rec.Time
			v.Approved, v.ApprovedBy, v.ApprovedAt, v.ApprovalComment = true, rec.Metadata.UserID, &at, e.Comment
		}
	}
	r.Revision = rec.Revision
	return nil
}

func (r *Recipe) version(n int) *Version {
	if n < 1 || n > len(r.Versions) {
		return nil
	}
	return &r.Versions[n-1]
}

// Latest is the newest version number (0 for none).
func (r *Recipe) Latest() int { return len(r.Versions) }

// LatestApproved is the newest approved version number (0 for none).
func (r *Recipe) LatestApproved() int {
	for i := len(r.Versions) - 1; i >= 0; i-- {
		if r.Versions[i].Approved {
			return r.Versions[i].Version
		}
	}
	return 0
}

// checkRecipeBody validates what a version stores, besides the physics:
// a JSON object without run-only fields. Field names are prefixed
// "recipe.", where the body nests them.
func checkRecipeBody(raw json.RawMessage, ve *process.ValidationError) map[string]json.RawMessage {
	raw = bytes.TrimSpace(raw)
	var fields map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
		ve.Add("recipe", nil, "a JSON object of ion or RTP recipe fields", "recipe must be an object")
		return nil
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(runOnlyFields, k) {
			ve.Add("recipe."+k, nil, "absent: set per run, not in a library recipe", k+" is set per run")
		}
	}
	return fields
}

// prefixed re-homes a recipe's field errors under "recipe.".
func prefixed(err error, ve *process.ValidationError) error {
	var verr *process.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	for _, f := range verr.Fields {
		f.Field = "recipe." + f.Field
		ve.Fields = append(ve.Fields, f)
	}
	return nil
}

// Save decides a new version. validate is the process kind's recipe
// validation (the same as runs get).
func (r *Recipe) Save(c SaveRecipe, validate func(json.RawMessage) error) (*events.RecipeVersionSaved, error) {
	var ve process.ValidationError
	if !namePattern.MatchString(c.Name) {
		ve.Add("name", c.Name, "1–64 letters, digits or underscores", "invalid recipe name")
	}
	if c.Kind != process.KindIon && c.Kind != process.KindRTP {
		ve.Add("kind", string(c.Kind), "ion, rtp", "unknown process kind")
	} else if r.exists && c.Kind != r.Kind {
		ve.Add("kind", string(c.Kind), string(r.Kind), "a recipe keeps its process kind across versions")
	}
	if len(c.Comment) > 1000 {
		ve.Add("comment", nil, "at most 1000 characters", "comment is too long")
	}
	if fields := checkRecipeBody(c.Recipe, &ve); fields != nil && validate != nil && len(ve.Fields) == 0 {
		if err := validate(c.Recipe); err != nil {
			if err := prefixed(err, &ve); err != nil {
				return nil, err
			}
		}
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, c.Recipe); err != nil {
		return nil, fmt.Errorf("compact recipe: %w", err)
	}
	return &events.RecipeVersionSaved{OrgID: c.Meta.OrgID, Name: c.Name, Version: r.Latest() + 1, Kind: c.Kind,
		Recipe: compact.Bytes(), Comment: c.Comment}, nil
}

// Approve decides an approval: the version exists, is not approved yet,
// and the approver did not write it (four eyes).
func (r *Recipe) Approve(c ApproveRecipe) (*events.RecipeVersionApproved, error) {
	if len(c.Comment) > 1000 {
		var ve process.ValidationError
		ve.Add("comment", nil, "at most 1000 characters", "comment is too long")
		return nil, &ve
	}
	v := r.version(c.Version)
	switch {
	case !r.exists || v == nil:
		return nil, ErrNotFound
	case v.Approved:
		return nil, refuse(fmt.Sprintf("version %d of recipe %s is already approved", c.Version, r.Name))
	case v.SavedBy == c.Meta.UserID:
		return nil, refuse(fmt.Sprintf("version %d of recipe %s was written by %s: another person must approve it",
			c.Version, r.Name, v.SavedBy))
	}
	return &events.RecipeVersionApproved{OrgID: r.OrgID, Name: r.Name, Version: c.Version, Comment: c.Comment}, nil
}

// Resolve picks the version a run uses: the one named, or the latest
// approved (production) or latest (otherwise) when version is 0. A
// production run needs an approved version.
func (r *Recipe) Resolve(version int, production bool) (Version, error) {
	if !r.exists {
		return Version{}, ErrNotFound
	}
	if version == 0 {
		version = r.Latest()
		if production {
			if version = r.LatestApproved(); version == 0 {
				return Version{}, refuse(fmt.Sprintf("recipe %s has no approved version: production runs need one (an admin approves a version)", r.Name))
			}
		}
	}
	v := r.version(version)
	if v == nil {
		return Version{}, ErrNotFound
	}
	if production && !v.Approved {
		return Version{}, refuse(fmt.Sprintf("version %d of recipe %s is not approved: production runs need an approved version (an admin approves it, or start an engineering run)",
			version, r.Name))
	}
	return *v, nil
}

// Change is one difference between two versions of a recipe: a field path
// ("energy_kev", "segments[1].target_temp_c") with its value in each (nil:
// absent).
type Change struct {
	Field string `json:"field"`
	From  any    `json:"from"`
	To    any    `json:"to"`
}

// Diff lists the fields that differ between two recipes, by path, sorted.
func Diff(from, to json.RawMessage) ([]Change, error) {
	var a, b any
	if err := json.Unmarshal(from, &a); err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	if err := json.Unmarshal(to, &b); err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	fa, fb := map[string]any{}, map[string]any{}
	flatten("", a, fa)
	flatten("", b, fb)
	var out []Change
	for k, va := range fa {
		if vb, ok := fb[k]; !ok || !equalJSON(va, vb) {
			out = append(out, Change{Field: k, From: va, To: fb[k]})
		}
	}
	for k, vb := range fb {
		if _, ok := fa[k]; !ok {
			out = append(out, Change{Field: k, To: vb})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out, nil
}

func flatten(prefix string, v any, out map[string]any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, x, out)
		}
	case []any:
		for i, x := range t {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), x, out)
		}
	default:
		out[prefix] = v
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
