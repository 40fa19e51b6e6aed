package rtp

// Run-to-run adjustment keys this engine reads from process.Options.R2R.
const (
	// R2RTempOffset (°C) moves every segment at the recipe's peak target,
	// clamped to ±MaxTempOffsetC and to the recipe limits.
	R2RTempOffset = "temp_offset_c"
	// R2RHoldOffset (s) lengthens (or shortens) the last segment at the
	// recipe's peak target, clamped to 0–300 s.
	R2RHoldOffset = "hold_offset_s"
)

// MaxTempOffsetC bounds the run-to-run temperature offset.
const MaxTempOffsetC = 25.0
