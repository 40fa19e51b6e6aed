// Package projections builds Spectra's read models from the event log.
//
// A Runner subscribes to the log from the checkpoint of its projections,
// applies every record to each, checkpoints their snapshots now and then,
// and lets callers wait until a position has been applied (WaitFor), so a
// read right after a command sees what the command appended. Every
// projection can always be rebuilt from the log: Rebuild drops its
// checkpoint and replays from the beginning. ExampleRunner shows the
// wiring.
package projections
