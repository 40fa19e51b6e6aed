package kurrent

import (
	"testing"

	"github.com/spectra-fab/spectra/internal/leaktest"
)

// TestMain fails the package's tests when one leaves a goroutine behind,
// but for what the KurrentDB client leaves after its server went away
// (leaktest.KurrentClient: TestCloseDuringOutage,
// TestClientClosedItselfIsReplaced, the restart tests).
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.KurrentClient()...) }
