// Package cluster makes the nodes of Spectra one protoactor-go cluster.
// A run is a grain (virtual actor) named by its run id: the disthash
// identity lookup places it on one member, and every command from any node
// reaches that one activation through cluster.Request. Members find each
// other through heartbeats on NATS (Membership), since every node already
// shares the NATS that holds the log: no other service is needed on a
// laptop, on bare metal or in Kubernetes. Queue slots (Slots) live in a
// replicated NATS KV bucket.
//
//	c, err := cluster.Join(svc.System(), cluster.Config{Node: "node-1",
//		Host: "127.0.0.1", Port: 7102, Conn: nc, Kinds: []*protocluster.Kind{svc.RunGrain()}})
//	svc.Place(c) // commands now reach run grains wherever they live
package cluster

// KurrentDB's client registers a gossip.proto too.
import _ "github.com/spectra-fab/spectra/internal/protoconflict"
