package spc_test

import (
	"fmt"

	"github.com/spectra-fab/spectra/process/spc"
)

func ExampleMonitor() {
	l := spc.IndividualsLimits([]float64{10.1, 9.9, 10.0, 10.2, 9.8, 10.0, 10.1, 9.9})
	m := spc.NewMonitor(l)
	for _, x := range []float64{10.0, 10.1, 11.2, 10.0} {
		for _, v := range m.Add(x) {
			fmt.Println(v.Rule, v.Index)
		}
	}
	// Output:
	// WE1 2
}

func ExampleCUSUM() {
	c := spc.NewCUSUM(0, 1, spc.DefaultK, spc.DefaultH)
	for i, x := range []float64{0.2, -0.4, 1.6, 1.4, 1.8, 1.5, 1.7} {
		if high, low := c.Add(x); high || low {
			fmt.Printf("signal at point %d, estimated mean %.2f\n", i, c.Shift())
		}
	}
	// Output:
	// signal at point 6, estimated mean 1.60
}
