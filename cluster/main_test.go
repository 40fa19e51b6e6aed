package cluster

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/spectra-fab/spectra/internal/leaktest"
)

// TestMain fails the package's tests when one leaves a goroutine behind,
// but for protoactor's gossip throttles (TestKubernetesProvider, built
// with -tags kubernetes): like the dead-letter throttle leaktest already
// names, each waits out one throttle period after the cluster shut down
// and then ends. The second name is the same kind of throttle as the
// gossip actor builds it.
func TestMain(m *testing.M) {
	leaktest.Main(m,
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.NewGossipActor.NewThrottleWithLogger.func2.1"))
}
