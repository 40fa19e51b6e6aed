// Package node wires a Spectra node: the NATS connection (or an
// embedded NATS server), the event store, artifact storage and projection
// checkpoints, the projections, the actor layer and the HTTP API. It is the
// only package that chooses drivers (see ExampleStart). Config.Bind
// declares each setting's flag and SPECTRA_* variable.
package node
