package node_test

import (
	"testing"

	"github.com/spectra-fab/spectra/internal/leaktest"
)

// TestMain fails the package's tests when one leaves a goroutine behind,
// but for what the KurrentDB client leaves after its server went away
// (leaktest.KurrentClient: TestKurrentDBOutage).
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.KurrentClient()...) }
