package kurrent

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/spectra-fab/spectra/internal/leaktest"
)

// TestMain fails the package's tests when one leaves a goroutine behind,
// but for what the KurrentDB client (EventStore-Client-Go v4) leaves when
// it closes itself after a failed discovery (TestCloseDuringOutage,
// TestClientClosedItselfIsReplaced): calls already inside it stay blocked
// sending to its stopped connection loop, and the gRPC connections it
// dialled keep their callback serializers and reconnection loops. The store replaces such a
// client and returns to its callers when their contexts end; it cannot
// end the client's own goroutines.
func TestMain(m *testing.M) {
	leaktest.Main(m,
		goleak.IgnoreTopFunction("github.com/EventStore/EventStore-Client-Go/v4/esdb.(*grpcClient).getConnectionHandle"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"))
}
