package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// entry is one catalogue entry: the current schema version of a type, a
// constructor for its payload, and upcasters from older versions.
type entry struct {
	version int
	newFn   func() Payload
	// upcast[v] turns version v's JSON into version v+1's.
	upcast map[int]func(json.RawMessage) (json.RawMessage, error)
	// run: the type is written to run streams (run-<id>) by a run's actor.
	run bool
}

var catalogue = map[string]entry{}

func register[T Payload](version int) {
	var zero T
	catalogue[zero.EventType()] = entry{version: version, newFn: func() Payload { var p T; return any(&p).(Payload) }}
}

// registerRun registers a type of the run streams: package run must give
// it a status transition (a test checks).
func registerRun[T Payload](version int) {
	register[T](version)
	var zero T
	e := catalogue[zero.EventType()]
	e.run = true
	catalogue[zero.EventType()] = e
}

func init() {
	registerRun[RunRequested](1)
	registerRun[RunQueued](1)
	registerRun[RunStarted](1)
	registerRun[RunPhaseChanged](1)
	registerRun[TelemetryRecorded](1)
	registerRun[SPCViolation](1)
	registerRun[FDCAlarm](1)
	registerRun[RunPaused](1)
	registerRun[RunResumed](1)
	registerRun[RunCancelRequested](1)
	registerRun[RunCancelled](1)
	registerRun[RunFailed](1)
	registerRun[RunRetryScheduled](1)
	registerRun[RunRetried](1)
	registerRun[ArtifactStored](1)
	registerRun[RunCompleted](1)
	registerRun[RunTimeLimitWarning](1)
	register[ControllerTuned](1)
	register[AccessDenied](1)
	register[IdempotencyKeyClaimed](1)
	register[APIKeyIssued](1)
	register[APIKeyRevoked](1)
	register[RefreshTokenIssued](1)
	register[RefreshTokenRotated](1)
	register[TokenFamilyRevoked](1)
	register[SPCLimitsEstablished](1)
	register[SPCRuleViolated](1)
}

// VersionedType returns the stored type name of a base type name at its
// current version, e.g. "RunStarted.v1".
func VersionedType(base string) string {
	e, ok := catalogue[base]
	if !ok {
		return base
	}
	return base + ".v" + strconv.Itoa(e.version)
}

// BaseType strips the version from a stored type name.
func BaseType(t string) string {
	base, _, _ := strings.Cut(t, ".v")
	return base
}

func typeVersion(t string) int {
	_, v, ok := strings.Cut(t, ".v")
	if !ok {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 1
	}
	return n
}

// New builds an event to append from a payload, with a fresh id.
func New(p Payload, md Metadata) (Event, error) {
	return NewWithID(NewID(), p, md)
}

// NewWithID builds an event with the given id (derived ids make retried
// commands idempotent).
func NewWithID(id string, p Payload, md Metadata) (Event, error) {
	if t, ok := p.(*TelemetryRecorded); ok && t != nil {
		// Nine in ten events of a run: written without reflection when
		// the bytes are json.Marshal's exactly (encodeTelemetry).
		if data, ok := encodeTelemetry(make([]byte, 0, telemetrySize(t)), t); ok {
			return Event{ID: id, Type: VersionedType(p.EventType()), Data: data, Metadata: md}, nil
		}
	}
	data, err := json.Marshal(p)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s: %w", p.EventType(), err)
	}
	return Event{ID: id, Type: VersionedType(p.EventType()), Data: data, Metadata: md}, nil
}

// Decode returns a record's payload as a pointer to its catalogue type
// (*RunStarted, …), upcasting older schema versions. Unknown types return
// an error wrapping ErrUnknownType; callers skip those records.
func Decode(rec Record) (Payload, error) {
	base := BaseType(rec.Type)
	e, ok := catalogue[base]
	if !ok {
		return nil, fmt.Errorf("decode %s: %w", rec.Type, ErrUnknownType)
	}
	data := rec.Data
	for v := typeVersion(rec.Type); v < e.version; v++ {
		up, ok := e.upcast[v]
		if !ok {
			return nil, fmt.Errorf("decode %s: no upcaster from v%d", rec.Type, v)
		}
		var err error
		if data, err = up(data); err != nil {
			return nil, fmt.Errorf("upcast %s v%d: %w", rec.Type, v, err)
		}
	}
	if base == TypeTelemetryRecorded {
		var t TelemetryRecorded
		if decodeTelemetry(data, &t) {
			return &t, nil
		}
	} else if p, ok := decodeRunFast(base, data); ok {
		return p, nil
	}
	p := e.newFn()
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", rec.Type, err)
	}
	return p, nil
}

// ErrUnknownType is returned by Decode for a type not in the catalogue.
var ErrUnknownType = fmt.Errorf("unknown event type")

// Types returns the base names of every type in the catalogue, sorted.
func Types() []string {
	out := make([]string, 0, len(catalogue))
	for name := range catalogue {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// NewPayload returns an empty payload of a catalogue type, or false for a
// type the catalogue does not hold.
func NewPayload(base string) (Payload, bool) {
	e, ok := catalogue[base]
	if !ok {
		return nil, false
	}
	return e.newFn(), true
}

// RunTypes returns the base names of the catalogue types written to run
// streams, sorted.
func RunTypes() []string {
	var out []string
	for _, name := range Types() {
		if catalogue[name].run {
			out = append(out, name)
		}
	}
	return out
}
