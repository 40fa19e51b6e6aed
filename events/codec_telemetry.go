package events

import "github.com/spectra-fab/spectra/internal/jsonscan"

// Telemetry batches are nine in ten events of a run, and every reader of a
// run stream (the run actor applying what it appended, rebuilds, the
// stream's messages) decodes them, so they are read here without
// reflection. The fast path takes the form json.Marshal writes (plain
// ASCII strings, no nulls, each name once, exactly as tagged) and reports
// false for anything else, which Decode then hands to encoding/json: the
// result is the same either way (TestDecodeTelemetryMatchesEncodingJSON,
// FuzzDecodeTelemetry).

// decodeTelemetry decodes data into e (zero) when it has the common form.
func decodeTelemetry(data []byte, e *TelemetryRecorded) bool {
	s := jsonscan.New(data)
	var seen jsonscan.Seen
	once := seen.First
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "job_id":
			v, ok := s.Plain()
			if !ok || !once(1) {
				return false
			}
			e.JobID = string(v)
		case "attempt":
			n, ok := s.Int()
			if !ok || !once(2) {
				return false
			}
			e.Attempt = n
		case "first_step":
			n, ok := s.Int()
			if !ok || !once(4) {
				return false
			}
			e.FirstStep = n
		case "progress":
			v, ok := s.Float()
			if !ok || !once(8) {
				return false
			}
			e.Progress = v
		case "current_step":
			v, ok := s.Plain()
			if !ok || !once(16) {
				return false
			}
			e.CurrentStep = string(v)
		case "samples":
			if !once(32) {
				return false
			}
			if s.Null() {
				return true
			}
			e.Samples = map[string][]float64{}
			return s.Object(func(name []byte) bool {
				if _, dup := e.Samples[string(name)]; dup {
					return false
				}
				var buf [16]float64 // a batch holds ten samples
				col := buf[:0]
				if !s.Array(func() bool {
					v, ok := s.Float()
					col = append(col, v)
					return ok
				}) {
					return false
				}
				e.Samples[string(name)] = append(make([]float64, 0, len(col)), col...)
				return true
			})
		default:
			// Another name, or one encoding/json would match without
			// regard to case: its rules apply.
			return false
		}
		return true
	}) && s.End()
}
