package events

import (
	"github.com/spectra-fab/spectra/internal/jsonscan"
	"github.com/spectra-fab/spectra/process"
)

// Besides telemetry, every run has a handful of events that every reader
// of its stream decodes (the job-status model all of them; a rebuild
// reads them for each run): the request and the completion, with their
// raw recipe and result, cost as much to decode with encoding/json as the
// rest of the run's records together. They are read here without
// reflection when they have the form json.Marshal writes (plain ASCII
// strings, each name once and exactly as tagged, objects for the raw
// fields, none of the rarer optional fields); anything else goes to
// encoding/json, which gives the same (TestDecodeRunEventsMatchEncodingJSON,
// FuzzDecodeRunEvents).

// decodeRunFast decodes a payload of base type base when it has the form
// its fast decoder takes; false otherwise (or for a type without one).
func decodeRunFast(base string, data []byte) (Payload, bool) {
	switch base {
	case TypeRunRequested:
		return decodeRunRequested(data)
	case TypeRunCompleted:
		return decodeRunCompleted(data)
	case TypeRunQueued:
		return decodeRunQueued(data)
	case TypeRunPhaseChanged:
		return decodeRunPhaseChanged(data)
	case TypeArtifactStored:
		return decodeArtifactStored(data)
	}
	return nil, false
}

// kindOf is kind k, the package constant's string when it is one.
func kindOf(k []byte) process.Kind {
	switch string(k) {
	case string(process.KindIon):
		return process.KindIon
	case string(process.KindRTP):
		return process.KindRTP
	}
	return process.Kind(k)
}

// plainString reads a plain string (jsonscan.Scanner.Plain) into *dst,
// the field's first time.
func plainString(s *jsonscan.Scanner, dst *string, first bool) bool {
	v, ok := s.Plain()
	if !ok || !first {
		return false
	}
	*dst = string(v)
	return true
}

// rawObject reads an object's text into a copy, as json.RawMessage keeps
// it; false for any other value (a null included).
func rawObject(s *jsonscan.Scanner, dst *[]byte, first bool) bool {
	if s.Peek() != '{' || !first {
		return false
	}
	v, ok := s.Raw()
	if !ok {
		return false
	}
	*dst = append([]byte(nil), v...)
	return true
}

func decodeRunRequested(data []byte) (Payload, bool) {
	e := &RunRequested{}
	s := jsonscan.New(data)
	var seen jsonscan.Seen
	once := seen.First
	ok := s.Object(func(key []byte) bool {
		switch string(key) {
		case "run_id":
			return plainString(&s, &e.RunID, once(1))
		case "job_id":
			return plainString(&s, &e.JobID, once(2))
		case "kind":
			v, ok := s.Plain()
			e.Kind = kindOf(v)
			return ok && once(4)
		case "recipe":
			return rawObject(&s, (*[]byte)(&e.Recipe), once(8))
		case "tool_id":
			return plainString(&s, &e.ToolID, once(16))
		case "priority":
			n, ok := s.Int()
			e.Priority = n
			return ok && once(32)
		case "seed":
			n, ok := s.Int64()
			e.Seed = n
			return ok && once(64)
		case "idempotency_key":
			return plainString(&s, &e.IdempotencyKey, once(128))
		case "created_at":
			// A string, handed whole to time.Time's UnmarshalJSON as
			// encoding/json does.
			if s.Peek() != '"' || !once(256) {
				return false
			}
			v, ok := s.Raw()
			return ok && e.CreatedAt.UnmarshalJSON(v) == nil
		default:
			// simulate_fault, simulate_disturbance, origin, or a name
			// encoding/json would match without regard to case.
			return false
		}
	}) && s.End()
	return e, ok
}

func decodeRunCompleted(data []byte) (Payload, bool) {
	e := &RunCompleted{}
	s := jsonscan.New(data)
	var seen jsonscan.Seen
	once := seen.First
	ok := s.Object(func(key []byte) bool {
		switch string(key) {
		case "job_id":
			return plainString(&s, &e.JobID, once(1))
		case "step":
			n, ok := s.Int()
			e.Step = n
			return ok && once(2)
		case "process_time_s":
			v, ok := s.Float()
			e.DurationS = v
			return ok && once(4)
		case "result":
			return rawObject(&s, (*[]byte)(&e.Result), once(8))
		case "r2r_observations":
			return rawObject(&s, (*[]byte)(&e.R2R), once(16))
		default:
			return false
		}
	}) && s.End()
	return e, ok
}

func decodeRunQueued(data []byte) (Payload, bool) {
	e := &RunQueued{}
	s := jsonscan.New(data)
	var seen jsonscan.Seen
	once := seen.First
	ok := s.Object(func(key []byte) bool {
		switch string(key) {
		case "job_id":
			return plainString(&s, &e.JobID, once(1))
		case "queue":
			return plainString(&s, &e.Queue, once(2))
		default:
			return false
		}
	}) && s.End()
	return e, ok
}

func decodeRunPhaseChanged(data []byte) (Payload, bool) {
	e := &RunPhaseChanged{}
	s := jsonscan.New(data)
	var seen jsonscan.Seen
	once := seen.First
	ok := s.Object(func(key []byte) bool {
		switch string(key) {
		case "job_id":
			return plainString(&s, &e.JobID, once(1))
		case "name":
			return plainString(&s, &e.Name, once(2))
		case "progress":
			v, ok := s.Float()
			e.Progress = v
			return ok && once(4)
		case "step":
			n, ok := s.Int()
			e.Step = n
			return ok && once(8)
		default:
			return false
		}
	}) && s.End()
	return e, ok
}

func decodeArtifactStored(data []byte) (Payload, bool) {
	e := &ArtifactStored{}
	s := jsonscan.New(data)
	var seen jsonscan.Seen
	once := seen.First
	ok := s.Object(func(key []byte) bool {
		switch string(key) {
		case "job_id":
			return plainString(&s, &e.JobID, once(1))
		case "name":
			return plainString(&s, &e.Name, once(2))
		case "content_type":
			return plainString(&s, &e.ContentType, once(4))
		case "size":
			n, ok := s.Int()
			e.Size = n
			return ok && once(8)
		case "uri":
			return plainString(&s, &e.URI, once(16))
		default:
			return false
		}
	}) && s.End()
	return e, ok
}
