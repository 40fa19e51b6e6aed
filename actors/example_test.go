package actors_test

import (
	"context"
	"fmt"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/processtest"
)

// A run of the deterministic test engine, created and followed to its end
// on the in-memory store.
func Example() {
	store := memory.New()
	svc, err := actors.New(actors.Config{TimeScale: 0}, store, nil,
		map[process.Kind]actors.EngineFactory{process.KindIon: processtest.Factory{}}, nil)
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	ctx := context.Background()
	acc, err := svc.CreateRun(ctx, actors.CreateRun{Kind: process.KindIon, Recipe: []byte(`{"steps":30}`),
		Meta: events.Metadata{OrgID: "org-1", UserID: "eng-1", Role: "engineer"}})
	if err != nil {
		panic(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		recs, _ := store.ReadStream(ctx, events.RunStream(acc.RunID), events.Backwards, ^uint64(0), 1)
		if len(recs) == 1 && events.BaseType(recs[0].Type) == events.TypeRunCompleted {
			fmt.Println("completed")
			return
		}
	}
	fmt.Println("still running")
	// Output: completed
}
