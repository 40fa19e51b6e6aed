package actors

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNextOrg(t *testing.T) {
	tests := []struct {
		name    string
		loads   []OrgLoad
		weights Weights
		want    int
	}{
		{"none_waiting", []OrgLoad{{Org: "a", Running: 2}, {Org: "b"}}, nil, -1},
		{"fewest_slots_held", []OrgLoad{{Org: "a", Waiting: 9, Running: 2}, {Org: "b", Waiting: 1, Running: 1}}, nil, 1},
		{"for_its_weight", []OrgLoad{{Org: "a", Waiting: 9, Running: 2}, {Org: "b", Waiting: 1, Running: 1}},
			Weights{"a": 3}, 0}, // 2/3 < 1/1
		{"then_least_virtual_time", []OrgLoad{{Org: "a", Waiting: 1, Running: 1, VTime: 5}, {Org: "b", Waiting: 1, Running: 1, VTime: 4}}, nil, 1},
		{"then_name", []OrgLoad{{Org: "b", Waiting: 1}, {Org: "a", Waiting: 1}}, nil, 1},
		{"zero_weight_counts_as_one", []OrgLoad{{Org: "a", Waiting: 1, Running: 1}, {Org: "b", Waiting: 1, Running: 2}}, Weights{"b": 0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextOrg(tt.loads, tt.weights); got != tt.want {
				t.Errorf("NextOrg = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestStartVTime(t *testing.T) {
	loads := []OrgLoad{{Org: "a", Running: 1, VTime: 7}, {Org: "b", Waiting: 2, VTime: 5}, {Org: "idle", VTime: 1}}
	if got := StartVTime("c", 0, loads); got != 5 {
		t.Errorf("StartVTime of a newcomer = %g, want 5 (the least active other's)", got)
	}
	if got := StartVTime("c", 9, loads); got != 9 {
		t.Errorf("StartVTime keeps a later own time: %g, want 9", got)
	}
	if got := StartVTime("c", 0, nil); got != 0 {
		t.Errorf("StartVTime alone = %g, want 0", got)
	}
}

// Repeated NextOrg and Charge share slots in proportion to the weights.
func TestNextOrgTakesTurnsByWeight(t *testing.T) {
	w := Weights{"a": 2}
	loads := []OrgLoad{{Org: "a", Waiting: 100}, {Org: "b", Waiting: 100}}
	got := map[string]int{}
	for range 30 {
		i := NextOrg(loads, w)
		loads[i].Waiting--
		loads[i].VTime = w.Charge(loads[i].Org, loads[i].VTime)
		got[loads[i].Org]++
	}
	if got["a"] != 20 || got["b"] != 10 {
		t.Errorf("admissions = %v, want a 20, b 10", got)
	}
}

func TestShares(t *testing.T) {
	tests := []struct {
		name    string
		limit   int
		demand  map[string]int
		weights Weights
		want    map[string]int
	}{
		{"equal", 4, map[string]int{"a": 200, "b": 10}, nil, map[string]int{"a": 2, "b": 2}},
		{"weighted", 4, map[string]int{"a": 200, "b": 10}, Weights{"a": 3}, map[string]int{"a": 3, "b": 1}},
		{"unwanted_slots_go_to_others", 10, map[string]int{"a": 200, "b": 2, "c": 1}, nil, map[string]int{"a": 7, "b": 2, "c": 1}},
		{"less_demand_than_slots", 10, map[string]int{"a": 3, "b": 2}, nil, map[string]int{"a": 3, "b": 2}},
		{"odd_slot_by_name", 3, map[string]int{"b": 5, "a": 5}, nil, map[string]int{"a": 2, "b": 1}},
		{"no_demand", 3, map[string]int{"a": 0}, nil, map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Shares(tt.limit, tt.demand, tt.weights)); diff != "" {
				t.Errorf("Shares (-want +got):\n%s", diff)
			}
		})
	}
}
