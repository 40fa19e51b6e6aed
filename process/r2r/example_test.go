package r2r_test

import (
	"fmt"

	"github.com/spectra-fab/spectra/process/r2r"
)

func ExampleEWMA() {
	// The dose comes out 2 % high whatever we do; the controller learns it.
	c := r2r.NewEWMA(0.3, 0) // target: 0 % dose error
	for range 4 {
		u := c.Recommend() // dose set-point trim, %
		measured := 2 + u  // this run's dose error, %
		c = c.Update(measured)
		fmt.Printf("ran at %+.2f %%, error %+.2f %%\n", u, measured)
	}
	// Output:
	// ran at +0.00 %, error +2.00 %
	// ran at -0.60 %, error +1.40 %
	// ran at -1.02 %, error +0.98 %
	// ran at -1.31 %, error +0.69 %
}
