// Package events is Spectra's vocabulary for the event log: the envelope
// every stored event carries (Record, Metadata), the catalogue of event
// payloads with their versioned type names, the codec that turns one into
// the other, stream naming, and the Store port every event store
// implements.
//
// A run's stream is "run-<run id>"; its events are appended by the run's
// actor only, always with the expected revision, so a second writer is
// refused with ErrConflict (see the package example).
//
// Every adapter (events/jetstream, events/kurrent, events/memory) passes the
// conformance suite in events/eventstest.
package events
