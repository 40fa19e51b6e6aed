package spc

import "math"

// CUSUM design defaults in σ units (Montgomery & Runger §16-10; physics
// reference §5.6): k = ½ is tuned to a 1σ shift (k = δ/2 in general), and
// h = 5 gives a two-sided in-control ARL of ≈465 points and detects a 1σ
// shift in ≈10.4 (h = 4: 168 and 8.38).
const (
	DefaultK = 0.5
	DefaultH = 5.0
)

// CUSUM is a two-sided tabular CUSUM on standardised points z = (x − μ0)/σ:
//
//	C⁺ = max(0, z − k + C⁺),  C⁻ = max(0, −k − z + C⁻)
//
// signalling when a sum exceeds h. After a signal both sums restart from the
// head start (0 unless SetHeadStart), the standard restart after
// corrective action (Montgomery). A CUSUM is deterministic and not safe for
// concurrent use.
type CUSUM struct {
	target, sigma, k, h float64
	head                float64
	hi, lo              float64 // C⁺, C⁻ in σ units
	hiBase, loBase      float64 // where the current stretch of each sum began
	nHi, nLo            int     // points since each sum was last zero
	n                   int     // points added
	shift               float64 // estimated mean at the last signal
	alarms              int
}

// NewCUSUM returns a CUSUM for in-control mean target and standard
// deviation sigma, with reference value k and decision interval h in σ
// units. k ≤ 0 and h ≤ 0 select DefaultK and DefaultH. With sigma ≤ 0 any
// departure from target signals at once.
func NewCUSUM(target, sigma, k, h float64) *CUSUM {
	if k <= 0 {
		k = DefaultK
	}
	if h <= 0 {
		h = DefaultH
	}
	return &CUSUM{target: target, sigma: sigma, k: k, h: h, shift: target}
}

// SetHeadStart sets the fast-initial-response head start in σ units (Lucas
// & Crosier 1982; h/2 is usual): both sums start from it now and after
// every signal.
func (c *CUSUM) SetHeadStart(s float64) {
	c.head = math.Max(s, 0)
	c.restart()
}

// Add adds a point and reports whether the upper sum (an upward shift) or
// the lower sum (a downward shift) exceeded h. After a signal both sums
// restart.
func (c *CUSUM) Add(x float64) (high, low bool) {
	c.n++
	z := 0.0
	if c.sigma > 0 {
		z = (x - c.target) / c.sigma
	} else if x != c.target {
		z = math.Copysign(math.Inf(1), x-c.target)
	}
	c.hi = math.Max(0, z-c.k+c.hi)
	c.lo = math.Max(0, -c.k-z+c.lo)
	if c.hi > 0 {
		c.nHi++
	} else {
		c.nHi, c.hiBase = 0, 0
	}
	if c.lo > 0 {
		c.nLo++
	} else {
		c.nLo, c.loBase = 0, 0
	}
	high, low = c.hi > c.h, c.lo > c.h
	if high || low {
		c.alarms++
		// μ̂ = μ0 ± σ(k + C/N) (Montgomery), from the side that signalled.
		switch {
		case !(c.sigma > 0):
			c.shift = x
		case high && (!low || c.hi >= c.lo):
			c.shift = c.target + c.sigma*(c.k+(c.hi-c.hiBase)/float64(max(c.nHi, 1)))
		default:
			c.shift = c.target - c.sigma*(c.k+(c.lo-c.loBase)/float64(max(c.nLo, 1)))
		}
		c.restart()
	}
	return high, low
}

// restart sets both sums to the head start.
func (c *CUSUM) restart() {
	c.hi, c.lo = c.head, c.head
	c.hiBase, c.loBase = c.head, c.head
	c.nHi, c.nLo = 0, 0
}

// High returns the upper sum C⁺ in σ units (after any restart).
func (c *CUSUM) High() float64 { return c.hi }

// Low returns the lower sum C⁻ in σ units (after any restart).
func (c *CUSUM) Low() float64 { return c.lo }

// H returns the decision interval in σ units.
func (c *CUSUM) H() float64 { return c.h }

// K returns the reference value in σ units.
func (c *CUSUM) K() float64 { return c.k }

// Len returns how many points c has seen.
func (c *CUSUM) Len() int { return c.n }

// Alarms returns how many signals c has raised.
func (c *CUSUM) Alarms() int { return c.alarms }

// Shift returns the process mean estimated at the last signal,
// μ0 ± σ(k + C/N) with N the points since the signalling sum was last zero
// (Montgomery; a head start is subtracted from C), or the target before any
// signal.
func (c *CUSUM) Shift() float64 { return c.shift }
