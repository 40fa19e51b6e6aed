package run

import (
	"math"
	"time"

	"github.com/spectra-fab/spectra/events"
)

// DefaultPolicy is the documented policy (docs/provenance.md): 3 retries,
// back-off 60 s doubling up to 10 min, time limits 2 h (soft) and 3 h
// (hard). A run whose log records no policy ran under it.
var DefaultPolicy = Policy{MaxRetries: 3, RetryBase: 60 * time.Second, RetryCap: 10 * time.Minute,
	SoftLimit: 2 * time.Hour, HardLimit: 3 * time.Hour}

// Record is the policy as RunStarted records it.
func (p Policy) Record() *events.RunPolicy {
	return &events.RunPolicy{MaxRetries: p.MaxRetries, RetryBaseS: p.RetryBase.Seconds(), RetryCapS: p.RetryCap.Seconds(),
		SoftLimitS: p.SoftLimit.Seconds(), HardLimitS: p.HardLimit.Seconds()}
}

// PolicyOf is the policy a RunStarted recorded.
func PolicyOf(r events.RunPolicy) Policy {
	d := func(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
	return Policy{MaxRetries: r.MaxRetries, RetryBase: d(r.RetryBaseS), RetryCap: d(r.RetryCapS),
		SoftLimit: d(r.SoftLimitS), HardLimit: d(r.HardLimitS)}
}
