package actors

import (
	"fmt"
	"testing"
	"time"
)

// Two organisations flood one queue of three slots with weights 2 and 1:
// while both wait, the table admits them 2:1, and holds them 2:1 at once;
// an organisation that idled comes back at the others' virtual time.
func TestSlotTableSharesByWeight(t *testing.T) {
	var tb SlotTable
	weight := func(org string) float64 {
		if org == "big" {
			return 2
		}
		return 1
	}
	at := time.Unix(0, 0)
	for i := range 30 {
		for _, org := range []string{"big", "small"} {
			tb.wait(SlotWait{RunID: fmt.Sprintf("%s-%02d", org, i), Org: org, Arrival: at.Add(time.Duration(i) * time.Second)})
		}
	}
	admitted := map[string]int{}
	admit := func() {
		for len(tb.Running) < 3 {
			i := tb.next(weight)
			if i < 0 {
				return
			}
			w := tb.Waiting[i]
			tb.hold(w.RunID, w.Org)
			tb.charge(w.Org, 1/weight(w.Org))
			admitted[w.Org]++
		}
	}
	admit()
	for range 27 { // the oldest holder ends, a slot frees
		held := map[string]int{}
		for _, id := range tb.Running {
			held[tb.Holders[id]]++
		}
		if held["big"] != 2 || held["small"] != 1 {
			t.Fatalf("holding %v with both waiting; want big 2, small 1", held)
		}
		tb.Drop(tb.Running[0])
		admit()
	}
	if admitted["big"] != 20 || admitted["small"] != 10 {
		t.Errorf("admitted %v after 30 admissions; want big 20, small 10", admitted)
	}
	// An organisation that idled comes back at the virtual time of those
	// active: idling earns no credit to flood with later.
	idle := SlotTable{VTime: map[string]float64{"big": 1, "small": 5}}
	idle.hold("small-x", "small")
	idle.wait(SlotWait{RunID: "big-late", Org: "big"})
	if idle.VTime["big"] != 5 {
		t.Errorf("big came back at virtual time %v; want small's 5", idle.VTime["big"])
	}
}

func (t *SlotTable) waitingOf(org string) int {
	n := 0
	for _, w := range t.Waiting {
		if w.Org == org {
			n++
		}
	}
	return n
}
