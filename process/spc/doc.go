// Package spc is statistical process control: Shewhart control limits, the
// Western Electric and Nelson run rules, a streaming rule monitor, a tabular
// CUSUM and an EWMA chart for drift detection, and their conversion into
// process.Alarm values; Learned, a within-run chart that learns its centre
// and σ̂ from the run's own baseline (step or drift); and T2Library, the
// Hotelling T² check of a run's summary vector against a library of good
// runs (docs/monitoring.md gives the false-alarm design).
//
// Sources, as the project's physics reference (§5.6, §5.7) cites them:
// Western Electric, Statistical Quality Control Handbook (1956) for rules
// 1–4; L. S. Nelson, J. Quality Technology 16(4), 237 (1984) for the Nelson
// rules; D. C. Montgomery, G. C. Runger, Applied Statistics and Probability
// for Engineers, §16-10, for the tabular CUSUM (k = ½, h = 4 or 5), and
// Montgomery's Introduction to Statistical Quality Control for the
// control-chart constants; J. M. Lucas, R. B. Crosier, Technometrics 24(3),
// 199 (1982) for the CUSUM head start; J. M. Lucas, M. S. Saccucci,
// Technometrics 32(1), 1 (1990) for the EWMA chart designs. Everything is
// deterministic and does no I/O.
//
// A run monitors a parameter against limits from a baseline and, for slow
// drifts, with a CUSUM in units of the same σ: see ExampleMonitor and
// ExampleCUSUM.
package spc
