package jetstream_test

import (
	"context"
	"fmt"
	"os"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
)

// Open embeds a NATS server with its files under DataDir (or connects to
// Config.URL) and owns it: Close shuts it down.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "spectra-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	s, err := jetstream.Open(ctx, jetstream.Config{DataDir: dir, Sync: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	ev, _ := events.New(events.RunQueued{JobID: "JOB-1", Queue: "ion"}, events.Metadata{OrgID: "org-1"})
	res, err := s.Append(ctx, events.RunStream("ION-1"), events.ExpectNoStream, ev)
	fmt.Println(res.Revision, res.Position > 0, err)
	// Output: 0 true <nil>
}
