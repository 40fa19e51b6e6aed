package bidi

import (
	"testing"

	"github.com/spectra-fab/spectra/internal/leaktest"
)

// TestMain fails the package's tests when one leaves a goroutine behind.
func TestMain(m *testing.M) { leaktest.Main(m) }
