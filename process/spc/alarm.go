package spc

import (
	"fmt"

	"github.com/spectra-fab/spectra/process"
)

// Rule names of the drift detectors, as process.Alarm.Rule carries them.
const (
	CUSUMHigh = "CUSUM+" // the upper CUSUM exceeded h
	CUSUMLow  = "CUSUM-" // the lower CUSUM exceeded h
	EWMAHigh  = "EWMA+"  // an EWMA chart left its upper limit
	EWMALow   = "EWMA-"  // an EWMA chart left its lower limit
)

// Alarm returns v as an SPC alarm on parameter at process time timeS: a
// point beyond the control limits (WE1) is critical, a run-rule pattern a
// warning.
func (v Violation) Alarm(parameter string, timeS float64) process.Alarm {
	sev := process.SeverityWarning
	if v.Rule == WE1 {
		sev = process.SeverityCritical
	}
	return process.Alarm{
		Source:    process.SourceSPC,
		Parameter: parameter,
		Rule:      v.Rule,
		Message:   v.Message,
		Severity:  sev,
		Value:     v.Value,
		TimeS:     timeS,
	}
}

// Alarm returns a CUSUM signal as an FDC warning on parameter at process
// time timeS, for the point value that raised it: high selects the upper
// sum. Call it right after Add signalled, while Shift holds the estimate.
func (c *CUSUM) Alarm(parameter string, high bool, value, timeS float64) process.Alarm {
	rule, dir := CUSUMLow, "downward"
	if high {
		rule, dir = CUSUMHigh, "upward"
	}
	return process.Alarm{
		Source:    process.SourceFDC,
		Parameter: parameter,
		Rule:      rule,
		Message: fmt.Sprintf("%s: %s drift of %s from target %.4g (CUSUM beyond h = %gσ); estimated mean %.4g",
			rule, dir, parameter, c.target, c.h, c.shift),
		Severity: process.SeverityWarning,
		Value:    value,
		TimeS:    timeS,
	}
}
