// Package leaktest holds the goroutine-leak checks of the packages'
// tests: each package's TestMain calls Main, so a test that leaves a
// goroutine behind fails the package. The few goroutines our dependencies
// leave by design (or by a bug of theirs) are ignored here, each by its
// function and with the reason, never by a blanket rule.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// Options are the goroutines no test of ours can end.
func Options() []goleak.Option {
	return []goleak.Option{
		// fasthttp (under Fiber) starts one goroutine per process that
		// refreshes the cached Date header every second, for ever.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// Fiber likewise starts one timestamp updater per process (behind a
		// sync.Once) that never stops; the second name is the same
		// function inlined into the limiter middleware (as -race builds it).
		goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/utils.StartTimeStampUpdater.func1.1"),
		goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/middleware/limiter.FixedWindow.New.StartTimeStampUpdater.func2.1"),
		// fasthttp's worker pool cleaner sleeps MaxIdleWorkerDuration (10 s)
		// between looks at its stop channel: it ends, but up to 10 s after
		// the server has shut down.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// protoactor's dead-letter throttle counts dead letters in a
		// goroutine that waits out one throttle period (actor.NewThrottle)
		// and then ends: it outlives an actor system shut down within that
		// period. The second name is the same function as -race builds it.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		// nats.go's JetStream async publisher starts this goroutine, which
		// reads the status channel under a lock; when the JetStream context
		// is cleaned up (connection closed) before it has read it, it reads
		// nil and blocks for ever on a nil channel (nats.go v1.55.0,
		// jetstream/publish.go). Nothing of ours can end it.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	}
}

// KurrentClient are what the KurrentDB client (EventStore-Client-Go v4)
// leaves behind after its server went away: on each reconnection it dials
// a new gRPC connection without closing the old one (whose callback
// serializers and reconnection loop then live on), and when it closes
// itself after a failed discovery, calls already inside it stay blocked
// sending to its stopped connection loop (asking for a connection, or
// reporting a failed call's error: node's TestKurrentDBOutage saw appends
// stuck so). The store replaces such a client and returns to its callers
// when their contexts end; it cannot end the client's own goroutines. Packages whose tests stop a KurrentDB
// server under a live store add these.
func KurrentClient() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/EventStore/EventStore-Client-Go/v4/esdb.(*grpcClient).getConnectionHandle"),
		goleak.IgnoreTopFunction("github.com/EventStore/EventStore-Client-Go/v4/esdb.(*grpcClient).handleError"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"),
	}
}

// Main runs a package's tests, then fails them if goroutines are left
// behind; extra options add a package's own known cases.
func Main(m *testing.M, extra ...goleak.Option) {
	goleak.VerifyTestMain(m, append(Options(), extra...)...)
}
