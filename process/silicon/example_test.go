package silicon_test

import (
	"fmt"

	"github.com/spectra-fab/spectra/process/silicon"
)

func Example() {
	// P 40 keV 1e15 cm⁻² (Rp 53.4 nm, ΔRp 23.6 nm) after a 1050 °C spike.
	dt := silicon.ThermalBudget("P", []float64{0, 3, 9}, []float64{600, 1050, 600})
	sigma := silicon.BroadenedSigmaNm(23.6, dt)
	peak := silicon.GaussianPeak(1e15, sigma)
	fmt.Printf("σ = %.1f nm, xj = %.3f µm, activation %.0f %%\n",
		sigma, silicon.GaussianJunctionDepth(53.4, sigma, peak, 1e15), silicon.Activation("P", 1050, 1))
	// Output:
	// σ = 23.7 nm, xj = 0.170 µm, activation 100 %
}
