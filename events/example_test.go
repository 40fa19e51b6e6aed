package events_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/memory"
)

// A run's actor appends with the expected revision, so a second writer of
// the stream is refused with ErrConflict.
func Example() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	md := events.Metadata{OrgID: "org-1", UserID: "u-1", Node: "node-1"}

	ev, _ := events.New(events.RunQueued{JobID: "JOB-1", Queue: "ion"}, md)
	res, err := store.Append(ctx, events.RunStream("ION-1"), events.ExpectNoStream, ev)
	fmt.Println(res.Revision, err)

	next, _ := events.New(events.RunStarted{JobID: "JOB-1", Attempt: 0}, md)
	_, err = store.Append(ctx, events.RunStream("ION-1"), events.ExpectNoStream, next) // stale writer
	fmt.Println(errors.Is(err, events.ErrConflict))

	_, err = store.Append(ctx, events.RunStream("ION-1"), events.ExpectRevision(res.Revision), next)
	fmt.Println(err)
	// Output:
	// 0 <nil>
	// true
	// <nil>
}

// Decode turns a stored record back into its catalogue payload, upcasting
// older versions of the type.
func ExampleDecode() {
	ev, _ := events.New(events.RunPaused{JobID: "JOB-1", Step: 42}, events.Metadata{})
	p, err := events.Decode(events.Record{Type: ev.Type, Data: ev.Data})
	fmt.Println(ev.Type, p.(*events.RunPaused).Step, err)
	// Output: RunPaused.v1 42 <nil>
}
