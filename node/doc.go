// Package node wires a Spectra node: the NATS connection (or an
// embedded NATS server), the event store, artifact storage and projection
// checkpoints, the projections, the actor layer and the HTTP API. It is the
// only package that chooses drivers.
//
//	node, err := node.Start(ctx, node.Config{DataDir: "./data", HTTPAddr: ":8003", JWTSecret: secret})
//	defer node.Close()
package node
