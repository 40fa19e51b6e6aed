// Package actors runs Spectra's process jobs as protoactor-go actors.
//
// Each run is one actor, the only writer of its stream run-<id>. It loads
// its stream, re-creates its process.Engine from what the stream records,
// steps it on a clock paced by the time scale, and appends what happened —
// always with the expected revision, so a second writer (a stale or
// duplicated actor) is refused by the store and stops: fencing, never a
// restart loop against the store.
//
// Run actors are children of one supervisor actor that restarts a crashed
// run with our own exponential back-off. A scheduler actor admits runs per
// queue (process kind and tool) by priority, then arrival, up to each
// queue's concurrency limit.
//
// Commands reach a run through one seam, Service.send, by run id; in
// cluster mode that seam places run actors as cluster grains without
// touching the API or the actor's logic. Messages that cross it are
// protobuf (package actorspb). The decisions themselves are the run
// aggregate's (package run); Example shows the layer in use.
package actors
