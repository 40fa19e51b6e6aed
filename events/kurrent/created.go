package kurrent

import (
	"strconv"
	"sync/atomic"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// The client parses every event's "created" system metadata with
// log.Fatalf on failure (esdb/protobuf_utils.go, createdFromProto): one
// event without it, from a proxy, a faulty node or a test double, would end
// the whole process. The client offers no hook into its connection, so the
// guard sits in gRPC's codec registry: it wraps the "proto" codec, leaves
// every message but a Streams read response untouched, and gives an event
// with a missing or malformed "created" the value "0" plus a marker the
// adapter turns into a zero Record.Time. The wrapper delegates marshalling
// and unmarshalling to the registered proto codec, so other gRPC users in
// the process (protoactor's remote) see no difference.

// createdMissing marks, in the system metadata, an event whose "created"
// the guard had to fill.
const createdMissing = "spectra-created-missing"

// guardCreated switches the guard; tests turn it off to show the trap.
var guardCreated atomic.Bool

func init() {
	guardCreated.Store(true)
	base := encoding.GetCodecV2(proto.Name)
	if base == nil {
		return // no proto codec registered: nothing to guard
	}
	encoding.RegisterCodecV2(createdGuard{base: base})
}

type createdGuard struct{ base encoding.CodecV2 }

func (c createdGuard) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c createdGuard) Unmarshal(data mem.BufferSlice, v any) error {
	if err := c.base.Unmarshal(data, v); err != nil {
		return err
	}
	if r, ok := v.(*api.ReadResp); ok && guardCreated.Load() {
		if ev := r.GetEvent(); ev != nil {
			fillCreated(ev.GetEvent())
			fillCreated(ev.GetLink())
		}
	}
	return nil
}

func (c createdGuard) Name() string { return c.base.Name() }

func fillCreated(e *api.ReadResp_ReadEvent_RecordedEvent) {
	if e == nil {
		return
	}
	if _, err := strconv.ParseInt(e.Metadata["created"], 10, 64); err == nil {
		return
	}
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	e.Metadata["created"] = "0"
	e.Metadata[createdMissing] = "true"
}
