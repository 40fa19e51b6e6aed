package ion_test

import (
	"fmt"
	"os"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
)

// A run from recipe to results, as a run actor drives it: parse, build
// the engine, step it (100 ms of process time a step) until it is done
// or faults, then finish. (Not run: a whole run's steps take a while.)
func ExampleNewEngine() {
	body, err := os.ReadFile("../../examples/ion-seed.json")
	if err != nil {
		return
	}
	r, err := ion.ParseRecipe(body) // *process.ValidationError on a bad recipe
	if err != nil {
		fmt.Println(err)
		return
	}
	e, err := ion.NewEngine(r, process.Options{Seed: 1})
	if err != nil {
		return
	}
	for _, m := range e.SetupMarks() {
		fmt.Println(m.Name, m.Progress)
	}
	for res := e.Step(); !res.Done && res.Fault == nil; res = e.Step() {
		_ = res.Progress // telemetry, alarms and the step name on the way
	}
	out := e.Finish() // results, R2R observations, artifacts
	_ = out
}

// SimulateDoseProfile is POST /api/ion/simulate/dose_profile: the depth
// profile and dose map of an implant on an ideal tool.
func ExampleSimulateDoseProfile() {
	p, err := ion.SimulateDoseProfile(ion.ProfileRequest{Species: "P", EnergyKeV: 40, DoseAtomsCm2: 1e15, TiltDeg: 7})
	_, _ = p, err
}
