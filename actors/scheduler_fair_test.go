package actors

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// fakeRun stands in for a run actor: it reports its admission.
type fakeRun struct {
	id       string
	admitted chan<- string
}

func (f *fakeRun) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*admit); ok {
		f.admitted <- f.id
	}
}

// admissions runs a scheduler with limit slots: org-a enqueues na runs,
// then org-b nb; each admitted run is released at once in admission order
// once the queue is full, as if runs took equal time. It returns the
// organisations in admission order ("a" or "b").
// how a run's organisation reaches the scheduler.
const (
	ownBefore  = iota // Service.Own before the run enqueues
	ownAfter          // Service.Own after the run enqueued: the run moves over
	ownEnqueue        // on the enqueue itself
)

func admissions(t *testing.T, limit, na, nb int, w map[string]float64, how int) string {
	t.Helper()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(system.Shutdown)
	sched := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return newScheduler(Config{QueueLimit: limit}.withDefaults())
	}))
	admitted := make(chan string, na+nb)
	system.Root.Send(sched, &weights{w: w})
	enqueue := func(org string, i int) {
		id := org + string(rune('A'+i/26)) + string(rune('a'+i%26))
		pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &fakeRun{id: id, admitted: admitted} }))
		own := &owner{runID: id, org: "org-" + org}
		enq := &enqueue{runID: id, queue: "ion", arrival: time.Unix(int64(i), 0), pid: pid}
		switch how {
		case ownBefore:
			system.Root.Send(sched, own)
			system.Root.Send(sched, enq)
		case ownAfter:
			system.Root.Send(sched, enq)
			system.Root.Send(sched, own)
		case ownEnqueue:
			enq.org = own.org
			system.Root.Send(sched, enq)
		}
	}
	for i := range na {
		enqueue("a", i)
	}
	var order []string
	next := func() string {
		select {
		case id := <-admitted:
			order = append(order, id)
			return id
		case <-time.After(5 * time.Second):
			t.Fatalf("no admission after %v", order)
			return ""
		}
	}
	for range limit {
		next() // the first runs fill the queue
	}
	for i := range nb {
		enqueue("b", i)
	}
	for i := 0; len(order) < na+nb; i++ {
		system.Root.Send(sched, &release{runID: order[i], queue: "ion"})
		next()
	}
	var sb strings.Builder
	for _, id := range order {
		sb.WriteByte(id[0])
	}
	return sb.String()
}

func TestSchedulerSharesSlotsBetweenOrganisations(t *testing.T) {
	tests := []struct {
		name    string
		limit   int
		weights map[string]float64
		how     int
		want    string
	}{
		// org-b's runs take every other freed slot, not the end of org-a's backlog.
		{"equal_weights", 2, nil, ownBefore, "aa" + "babababa" + "aaaa"},
		{"owner_known_after_enqueue", 2, nil, ownAfter, "aa" + "babababa" + "aaaa"},
		// Weight 3 to 1 on four slots: org-a keeps three, org-b one.
		{"owner_on_the_enqueue", 2, nil, ownEnqueue, "aa" + "babababa" + "aaaa"},
		{"weighted", 4, map[string]float64{"org-a": 3}, ownBefore, "aaaa" + "baaabaaab" + "b"},
		// One organisation alone: priority then arrival, as before.
		{"one_organisation", 2, nil, ownBefore, "aaaaaaaaaa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nb := 4
			if tt.name == "one_organisation" {
				nb = 0
			}
			got := admissions(t, tt.limit, 10, nb, tt.weights, tt.how)
			if got != tt.want {
				t.Errorf("admissions = %s, want %s", got, tt.want)
			}
		})
	}
}
