package fab

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
)

// given folds payloads, as user, into apply.
func given(t *testing.T, apply func(events.Record) error, at time.Time, user string, ps ...events.Payload) {
	t.Helper()
	for i, p := range ps {
		ev, err := events.New(p, events.Metadata{OrgID: "org-1", UserID: user})
		if err != nil {
			t.Fatal(err)
		}
		if err := apply(events.Record{ID: ev.ID, Type: ev.Type, Data: ev.Data, Metadata: ev.Metadata, Revision: uint64(i), Time: at}); err != nil {
			t.Fatal(err)
		}
	}
}

func md(user string) events.Metadata { return events.Metadata{OrgID: "org-1", UserID: user} }

// strictIon stands in for the ion recipe validation.
func strictIon(raw json.RawMessage) error {
	var r struct {
		Energy float64 `json:"energy_kev"`
	}
	_ = json.Unmarshal(raw, &r)
	if r.Energy < 1 || r.Energy > 200 {
		ve := &process.ValidationError{}
		ve.Add("energy_kev", r.Energy, "1–200", "out of range")
		return ve
	}
	return nil
}

func fields(err error) []string {
	var ve *process.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, f := range ve.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestRecipeSave(t *testing.T) {
	saved := &events.RecipeVersionSaved{OrgID: "org-1", Name: "b5", Version: 1, Kind: process.KindIon, Recipe: json.RawMessage(`{"energy_kev":5}`)}
	tests := []struct {
		name       string
		given      []events.Payload
		cmd        SaveRecipe
		wantFields []string
		wantVer    int
	}{
		{"first_version", nil, SaveRecipe{Name: "b5", Kind: process.KindIon, Recipe: json.RawMessage(`{"energy_kev": 5}`)}, nil, 1},
		{"next_version", []events.Payload{saved}, SaveRecipe{Name: "b5", Kind: process.KindIon, Recipe: json.RawMessage(`{"energy_kev":6}`)}, nil, 2},
		{"kind_is_kept", []events.Payload{saved}, SaveRecipe{Name: "b5", Kind: process.KindRTP, Recipe: json.RawMessage(`{}`)}, []string{"kind"}, 0},
		{"name_without_dash", nil, SaveRecipe{Name: "b-5", Kind: process.KindIon, Recipe: json.RawMessage(`{"energy_kev":5}`)}, []string{"name"}, 0},
		{"run_fields_refused", nil, SaveRecipe{Name: "b5", Kind: process.KindIon, Recipe: json.RawMessage(`{"energy_kev":5,"wafer_id":"W1","simulate_fault":{}}`)},
			[]string{"recipe.simulate_fault", "recipe.wafer_id"}, 0},
		{"physics_validated_like_runs", nil, SaveRecipe{Name: "b5", Kind: process.KindIon, Recipe: json.RawMessage(`{"energy_kev":500}`)}, []string{"recipe.energy_kev"}, 0},
		{"recipe_is_an_object", nil, SaveRecipe{Name: "b5", Kind: process.KindIon, Recipe: json.RawMessage(`[1]`)}, []string{"recipe"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Recipe
			given(t, r.Apply, time.Now(), "u-eng", tt.given...)
			tt.cmd.Meta = md("u-eng")
			ev, err := r.Save(tt.cmd, strictIon)
			if diff := cmp.Diff(tt.wantFields, fields(err)); diff != "" {
				t.Fatalf("Save fields (-want +got):\n%s (err %v)", diff, err)
			}
			if err == nil && ev.Version != tt.wantVer {
				t.Errorf("Save version = %d, want %d", ev.Version, tt.wantVer)
			}
		})
	}
}

func TestRecipeApproveAndResolve(t *testing.T) {
	v1 := &events.RecipeVersionSaved{OrgID: "org-1", Name: "b5", Version: 1, Kind: process.KindIon, Recipe: json.RawMessage(`{"energy_kev":5}`)}
	v2 := &events.RecipeVersionSaved{OrgID: "org-1", Name: "b5", Version: 2, Kind: process.KindIon, Recipe: json.RawMessage(`{"energy_kev":6}`)}
	ok1 := &events.RecipeVersionApproved{OrgID: "org-1", Name: "b5", Version: 1}
	var rule *RuleError

	var r Recipe
	given(t, r.Apply, time.Now(), "u-eng", v1, v2)
	if _, err := r.Approve(ApproveRecipe{Name: "b5", Version: 1, Meta: md("u-eng")}); !errors.As(err, &rule) {
		t.Errorf("Approve by the author = %v, want a RuleError", err)
	}
	if _, err := r.Approve(ApproveRecipe{Name: "b5", Version: 3, Meta: md("u-admin")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Approve of a missing version = %v, want ErrNotFound", err)
	}
	if _, err := r.Resolve(1, true); !errors.As(err, &rule) {
		t.Errorf("Resolve(1, production) unapproved = %v, want a RuleError", err)
	}
	if _, err := r.Resolve(0, true); !errors.As(err, &rule) {
		t.Errorf("Resolve(latest, production) with none approved = %v, want a RuleError", err)
	}
	if v, err := r.Resolve(2, false); err != nil || v.Version != 2 {
		t.Errorf("Resolve(2, engineering) = v%d, %v; want v2", v.Version, err)
	}
	ev, err := r.Approve(ApproveRecipe{Name: "b5", Version: 1, Meta: md("u-admin")})
	if err != nil {
		t.Fatalf("Approve by an admin: %v", err)
	}
	if diff := cmp.Diff(ok1, ev); diff != "" {
		t.Errorf("Approve (-want +got):\n%s", diff)
	}
	var after Recipe
	given(t, after.Apply, time.Now(), "u-admin", v1, v2, ok1)
	if v, err := after.Resolve(0, true); err != nil || v.Version != 1 {
		t.Errorf("Resolve(latest approved) = v%d, %v; want v1", v.Version, err)
	}
	if _, err := after.Approve(ApproveRecipe{Name: "b5", Version: 1, Meta: md("u-admin2")}); !errors.As(err, &rule) {
		t.Errorf("second approval = %v, want a RuleError", err)
	}
}

func TestDiff(t *testing.T) {
	got, err := Diff(json.RawMessage(`{"a":1,"segments":[{"t":800},{"t":900}],"gone":true}`),
		json.RawMessage(`{"a":1,"segments":[{"t":800},{"t":950}],"new":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{Field: "gone", From: true}, {Field: "new", To: "x"}, {Field: "segments[1].t", From: 900.0, To: 950.0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
}

func TestScheduleDue(t *testing.T) {
	epoch := time.Date(2026, 12, 3, 8, 0, 30, 0, time.UTC)
	created := &events.ScheduleCreated{ScheduleID: "sch_1", OrgID: "org-1", Cron: "* * * * *", Epoch: epoch, TimeScale: 60,
		Target: events.ScheduleTarget{Kind: process.KindIon, Recipe: events.RecipeRef{Name: "b5"}}}
	slot := func(min int) time.Time { return time.Date(2026, 12, 3, 8, min, 0, 0, time.UTC) }
	fired := func(min int) *events.ScheduleFired {
		return &events.ScheduleFired{ScheduleID: "sch_1", Slot: slot(min)}
	}
	wall := func(d time.Duration) time.Time { return epoch.Add(d) } // process time runs 60× faster
	tests := []struct {
		name        string
		given       []events.Payload
		now         time.Time
		want        time.Time
		wantSkipped int
		due         bool
	}{
		{"not_yet", []events.Payload{created}, wall(400 * time.Millisecond), time.Time{}, 0, false}, // process 08:00:54
		{"first_slot", []events.Payload{created}, wall(600 * time.Millisecond), slot(1), 0, true},   // process 08:01:06
		{"fired_slot_not_again", []events.Payload{created, fired(1)}, wall(1400 * time.Millisecond), time.Time{}, 0, false},
		{"next_after_fired", []events.Payload{created, fired(1)}, wall(1600 * time.Millisecond), slot(2), 0, true},
		{"catch_up_oldest_first", []events.Payload{created, fired(1)}, wall(5 * time.Second), slot(2), 0, true},
		{"catch_up_window", []events.Payload{created, fired(1)}, wall(20 * time.Second), slot(11), 9, true}, // 2..20 due: the last 10 fire
		{"paused", []events.Payload{created, &events.SchedulePaused{ScheduleID: "sch_1"}}, wall(5 * time.Second), time.Time{}, 0, false},
		{"skipped_slot_not_again", []events.Payload{created, &events.ScheduleFiringSkipped{ScheduleID: "sch_1", Slot: slot(1), Reason: "x"}},
			wall(1400 * time.Millisecond), time.Time{}, 0, false},
		{"next_after_skipped", []events.Payload{created, &events.ScheduleFiringSkipped{ScheduleID: "sch_1", Slot: slot(1), Reason: "x"}},
			wall(1600 * time.Millisecond), slot(2), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Schedule
			given(t, s.Apply, epoch, "u-eng", tt.given...)
			got, skipped, ok := s.Due(tt.now)
			if ok != tt.due || !got.Equal(tt.want) || skipped != tt.wantSkipped {
				t.Errorf("Due(%s) = %s, %d, %v; want %s, %d, %v", tt.now, got, skipped, ok, tt.want, tt.wantSkipped, tt.due)
			}
		})
	}

	// Resumed: the slots that passed while paused are skipped.
	var s Schedule
	given(t, s.Apply, epoch, "u-eng", created, &events.SchedulePaused{ScheduleID: "sch_1"})
	resumed, _ := events.New(&events.ScheduleResumed{ScheduleID: "sch_1"}, md("u-eng"))
	if err := s.Apply(events.Record{Type: resumed.Type, Data: resumed.Data, Revision: 2, Time: wall(5500 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := s.Due(wall(7 * time.Second)); !ok || !got.Equal(slot(7)) {
		t.Errorf("Due after resume = %s, %v; want %s (08:01–08:06 passed while paused)", got, ok, slot(7))
	}
	// Fire refuses a slot that is not the one due.
	if _, err := s.Fire(wall(7*time.Second), slot(5), ""); err == nil {
		t.Errorf("Fire of a passed slot succeeded")
	}
}

func TestOneShotScheduleSkippedIsDone(t *testing.T) {
	epoch := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	at := epoch.Add(time.Minute)
	var s Schedule
	given(t, s.Apply, epoch, "u-eng",
		&events.ScheduleCreated{ScheduleID: "sch_1", OrgID: "org-1", At: &at, Epoch: epoch, TimeScale: 1},
		&events.ScheduleFiringSkipped{ScheduleID: "sch_1", Slot: at, Reason: "recipe b5 has no approved version"})
	if !s.Done() || s.Skips != 1 || s.LastSkip.Reason == "" {
		t.Errorf("one-shot after its skipped slot: done %v, skips %d, last %+v", s.Done(), s.Skips, s.LastSkip)
	}
	if _, _, ok := s.Due(at.Add(time.Hour)); ok {
		t.Errorf("a skipped one-shot is due again")
	}
	if _, err := s.Skip(at.Add(time.Hour), at, "again"); err == nil {
		t.Errorf("Skip of a done slot succeeded")
	}
}

func TestLotMissing(t *testing.T) {
	var l Lot
	given(t, l.Apply, time.Now(), "u-op",
		&events.LotRequested{LotID: "L1", OrgID: "org-1", Wafers: []string{"A", "B", "C", "D"}},
		&events.LotWaferStarted{LotID: "L1", WaferID: "A", Slot: 1, RunID: "r1"},
		&events.LotWaferStarted{LotID: "L1", WaferID: "A", Slot: 1, RunID: "r1"}, // a second record changes nothing
		&events.LotWaferRejected{LotID: "L1", WaferID: "C", Slot: 3, Reason: "fault injection is disabled"})
	if diff := cmp.Diff([]string{"B", "D"}, l.Missing()); diff != "" {
		t.Errorf("Missing (-want +got):\n%s", diff)
	}
	if len(l.Members) != 1 || l.Rejected["C"] == "" {
		t.Errorf("members %+v, rejected %v", l.Members, l.Rejected)
	}
}
