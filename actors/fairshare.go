package actors

import "sort"

// Fair sharing of a queue's slots between organisations, as pure
// functions: the node's scheduler (scheduler.go) admits by them, and
// cluster-wide admission can call the same ones with counts summed over
// the cluster. See docs/fab.md.
//
// The policy: a freed slot goes to the organisation with waiting runs
// that holds the fewest slots for its weight (running ÷ weight); among
// equals, to the one with the least virtual time (each admission adds
// 1 ÷ weight: start-time fair queuing), then the first by name. An
// organisation that was idle starts at the least virtual time of the
// active others, so idling earns no credit to flood with later.

// Weights are organisations' fair-share weights. An organisation not in
// the map, or with a weight ≤ 0, weighs 1.
type Weights map[string]float64

// Of is org's weight.
func (w Weights) Of(org string) float64 {
	if v, ok := w[org]; ok && v > 0 {
		return v
	}
	return 1
}

// Charge is org's virtual time after one more admission.
func (w Weights) Charge(org string, vtime float64) float64 { return vtime + 1/w.Of(org) }

// OrgLoad is one organisation's part of a queue.
type OrgLoad struct {
	Org     string
	Waiting int     // runs waiting for a slot
	Running int     // slots held
	VTime   float64 // virtual time: Charge per admission, StartVTime when it becomes active
}

// NextOrg returns the index in loads of the organisation whose waiting run
// takes the next free slot, or -1 when none waits.
func NextOrg(loads []OrgLoad, w Weights) int {
	best, bestUse := -1, 0.0
	for i, l := range loads {
		if l.Waiting <= 0 {
			continue
		}
		use := float64(l.Running) / w.Of(l.Org)
		if best < 0 {
			best, bestUse = i, use
			continue
		}
		b := loads[best]
		switch {
		case use < bestUse,
			use == bestUse && l.VTime < b.VTime,
			use == bestUse && l.VTime == b.VTime && l.Org < b.Org:
			best, bestUse = i, use
		}
	}
	return best
}

// StartVTime is the virtual time org starts at when it becomes active
// (its first run waits after it had none waiting or running): its own,
// or the least of the other active organisations' if that is later.
func StartVTime(org string, own float64, loads []OrgLoad) float64 {
	least, found := 0.0, false
	for _, l := range loads {
		if l.Org == org || (l.Waiting <= 0 && l.Running <= 0) {
			continue
		}
		if !found || l.VTime < least {
			least, found = l.VTime, true
		}
	}
	return max(own, least)
}

// Shares divides limit slots between organisations that want demand[org]
// of them, in proportion to their weights and never more than an
// organisation wants (weighted max-min fairness; the slots one does not
// want go to the others). Every organisation with demand is in the result;
// the shares sum to min(limit, total demand). Ties go by name, so the
// result is the same on every node. A cluster-wide admission can give an
// organisation a slot on any node while its running count is below its
// share.
func Shares(limit int, demand map[string]int, w Weights) map[string]int {
	orgs := make([]string, 0, len(demand))
	total := 0
	for org, d := range demand {
		if d > 0 {
			orgs = append(orgs, org)
			total += d
		}
	}
	sort.Strings(orgs)
	out := make(map[string]int, len(orgs))
	for _, org := range orgs {
		out[org] = 0
	}
	for n := min(limit, total); n > 0; n-- {
		best := ""
		for _, org := range orgs {
			if out[org] >= demand[org] {
				continue
			}
			if best == "" || float64(out[org]+1)/w.Of(org) < float64(out[best]+1)/w.Of(best) {
				best = org
			}
		}
		out[best]++
	}
	return out
}
