// Package protoconflict lets KurrentDB's client and protoactor's cluster
// live in one binary. Both register a protobuf file named "gossip.proto"
// (their messages differ: event_store.client.gossip and cluster), and the
// protobuf runtime panics at start-up on a clash of file names unless
// GOLANG_PROTOBUF_REGISTRATION_CONFLICT says otherwise
// (https://protobuf.dev/reference/go/faq#namespace-conflict).
//
// Importing this package for its side effect sets the variable to
// "ignore" (unless the environment already says something) before either
// registers: packages initialise in import-path order once their imports
// have, and this one needs only os, so it runs before
// google.golang.org/protobuf, on which both registrations depend.
package protoconflict

import "os"

func init() {
	if _, ok := os.LookupEnv("GOLANG_PROTOBUF_REGISTRATION_CONFLICT"); !ok {
		_ = os.Setenv("GOLANG_PROTOBUF_REGISTRATION_CONFLICT", "ignore")
	}
}
