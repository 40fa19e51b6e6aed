package actors

import "github.com/spectra-fab/spectra/process/processtest"

// testFactory is the deterministic test engine the layers above process
// share: its sample "x" at step n is seed%1000 + n, it raises a WE1 alarm
// at alarm_at and honours injected faults like the real engines.
type testFactory = processtest.Factory
