package ion

import (
	"encoding/json"
	"math"
	"strconv"
)

// Hybrid-scan geometry (physics reference §1.7): a spot beam swept fast in
// x across the wafer plus an overscan on each side, while the wafer moves
// slowly through it in y. The sweep (~1 kHz) is so much faster than the
// wafer that x is painted evenly within each 100 ms step: the line pitch
// v_y/f_x ≈ 0.05 mm against a 10 mm spot gives a ripple
// 2·exp(−2π²σ²/Δ²) that underflows to zero.
const (
	elementaryCharge = 1.602176634e-19 // C
	overscanXMM      = 50.0            // sweep past each wafer edge (5 mA, 300 mm → W = 40 cm, §1.7's example)
	spotSigmaYMM     = 10.0            // beam spot 1σ in the slow-scan direction
	overscanYSigmas  = 4.0             // the wafer travels 4σ past the spot on each side
	rowsPerWafer     = 120             // dose bookkeeping rows across the diameter
	edgeExclusionMM  = 3.0             // uniformity excludes the outer 3 mm (§1.7)
	mapPoints        = 61              // points per axis of the 2-D dose map
	minScanMMS       = 1.0
	maxScanMMS       = 100.0
)

// scanGeom is the scan geometry of one wafer size.
type scanGeom struct {
	radius float64   // mm
	width  float64   // sweep width W, mm
	turn   float64   // |y| of the beam (wafer frame) where the wafer reverses, mm
	rows   []float64 // row centres, mm
	pitch  float64   // row pitch, mm
	// xCoef are Legendre coefficients (orders 1–4, in x/R) of the residual
	// x non-uniformity the profiler correction leaves (0 for an ideal tool).
	xCoef [4]float64
	xVar  float64   // cached xVariance, −1 until computed
	xw    []float64 // cached xWeights, nil until computed
	// chords are the rows' chords inside the edge exclusion, in row
	// order (uniformity weighs every row by its chord every step).
	chords []float64
}

func newScanGeom(diameterMM float64) *scanGeom {
	g := &scanGeom{radius: diameterMM / 2, xVar: -1}
	g.width = diameterMM + 2*overscanXMM
	g.turn = g.radius + overscanYSigmas*spotSigmaYMM
	g.pitch = diameterMM / rowsPerWafer
	g.rows = make([]float64, rowsPerWafer)
	for i := range g.rows {
		g.rows[i] = -g.radius + (float64(i)+0.5)*g.pitch
	}
	g.chords = make([]float64, rowsPerWafer)
	for i, y := range g.rows {
		g.chords[i] = g.chord(y, edgeExclusionMM)
	}
	return g
}

// scanLength returns the slow-scan travel of one pass, in mm.
func (g *scanGeom) scanLength() float64 { return 2 * g.turn }

// scannedAreaCm2 returns the rectangle one pass paints, W × L, in cm².
func (g *scanGeom) scannedAreaCm2() float64 { return g.width * g.scanLength() / 100 }

// xWeight returns the relative dose at x (mm) along the fast scan.
func (g *scanGeom) xWeight(x float64) float64 {
	u := x / g.radius
	w := 1.0
	for k, c := range g.xCoef {
		w += c * legendre(k+1, u)
	}
	return w
}

// chord returns the wafer's width at y inside the edge exclusion, in mm.
func (g *scanGeom) chord(y, exclusion float64) float64 {
	r := g.radius - exclusion
	if math.Abs(y) >= r {
		return 0
	}
	return 2 * math.Sqrt(r*r-y*y)
}

func legendre(l int, x float64) float64 {
	p0, p1 := 1.0, x
	if l == 0 {
		return p0
	}
	for k := 2; k <= l; k++ {
		p0, p1 = p1, ((2*float64(k)-1)*x*p1-(float64(k)-1)*p0)/float64(k)
	}
	return p1
}

// scanner tracks the beam's slow-scan position over the wafer and the
// fluence each row has received (ions/cm² normal to the beam).
type scanner struct {
	g      *scanGeom
	y      float64 // beam position in the wafer frame, mm
	dir    float64 // +1 or −1
	passes int     // completed passes
	rows   []float64

	// ends caches Erf((end−yj)·k) of rows endLo..endHi for the position
	// end where the last deposit stopped: the next deposit starts there
	// and needs the same values (bit for bit), so each step computes the
	// error function at its new end only, half the calls.
	end          float64
	endLo, endHi int // endHi < endLo: nothing cached
	ends, next   []float64
}

func newScanner(g *scanGeom) *scanner {
	n := len(g.rows)
	return &scanner{g: g, y: -g.turn, dir: 1, rows: make([]float64, n), endHi: -1,
		ends: make([]float64, n), next: make([]float64, n)}
}

// toTurn returns the slow-scan distance (mm) to the next turn-around.
func (s *scanner) toTurn() float64 { return math.Max(0, s.g.turn-s.dir*s.y) }

// move moves the wafer by dist mm (at most toTurn) at vMMS under a particle
// current iA (A, as charge state 1) and deposits the fluence; it reports
// whether a pass was completed. The deposit of a Gaussian spot moving at
// constant speed from y0 to y1 is exact: I/(q·W·v)·[Φ((y1−yj)/σ) − Φ((y0−yj)/σ)].
func (s *scanner) move(iA, vMMS, dist float64) bool {
	lim := s.toTurn()
	turned := dist >= lim-1e-9
	if turned {
		dist = lim
	}
	y0, y1 := s.y, s.y+s.dir*dist
	s.deposit(iA, vMMS, y0, y1)
	s.y = y1
	if turned {
		s.dir = -s.dir
		s.passes++
	}
	return turned
}

func (s *scanner) deposit(iA, vMMS, y0, y1 float64) {
	if iA <= 0 || vMMS <= 0 || y0 == y1 {
		return
	}
	start, end := y0, y1 // the wafer moves from start to end
	if y0 > y1 {
		y0, y1 = y1, y0
	}
	// ions/cm² per unit Φ difference: I/(q·W[cm]·v[cm/s]).
	f := iA / (elementaryCharge * (s.g.width / 10) * (vMMS / 10))
	reach := 6 * spotSigmaYMM
	lo := int(math.Max(0, math.Floor((y0-reach+s.g.radius)/s.g.pitch)))
	hi := int(math.Min(float64(len(s.rows)-1), math.Ceil((y1+reach+s.g.radius)/s.g.pitch)))
	k := 1 / (math.Sqrt2 * spotSigmaYMM)
	cached := start == s.end
	for j := lo; j <= hi; j++ {
		yj := s.g.rows[j]
		var es float64
		if cached && j >= s.endLo && j <= s.endHi {
			es = s.ends[j]
		} else {
			es = math.Erf((start - yj) * k)
		}
		ee := math.Erf((end - yj) * k)
		s.next[j] = ee
		e0, e1 := es, ee
		if start > end {
			e0, e1 = ee, es
		}
		d := 0.5 * (e1 - e0)
		s.rows[j] += f * d
	}
	s.ends, s.next = s.next, s.ends
	s.end, s.endLo, s.endHi = end, lo, hi
}

// rowAt interpolates the row fluence at y (mm).
func (s *scanner) rowAt(y float64) float64 {
	p := (y+s.g.radius)/s.g.pitch - 0.5
	i := int(math.Floor(p))
	switch {
	case i < 0:
		return s.rows[0]
	case i >= len(s.rows)-1:
		return s.rows[len(s.rows)-1]
	}
	f := p - float64(i)
	return s.rows[i]*(1-f) + s.rows[i+1]*f
}

// uniformity returns the mean fluence inside the edge exclusion and its 1σ
// non-uniformity in %, cheaply enough for every step: rows weighted by
// their chord, combined with the x profile's own variance as if the two
// were independent, σ² = (1+σy²)(1+σx²) − 1.
func (s *scanner) uniformity() (mean, sigmaPct float64) {
	var sw, sx, sxx float64
	for j, c := range s.g.chords {
		if c == 0 {
			continue
		}
		d := s.rows[j]
		sw += c
		sx += c * d
		sxx += c * d * d
	}
	if sw == 0 || sx == 0 {
		return 0, 0
	}
	mean = sx / sw
	vy := math.Max(0, sxx/sw-mean*mean) / (mean * mean)
	vx := s.g.xVariance()
	return mean, 100 * math.Sqrt((1+vy)*(1+vx)-1)
}

// xVariance returns the relative variance of the x profile over the wafer
// area inside the edge exclusion.
func (g *scanGeom) xVariance() float64 {
	if g.xVar >= 0 {
		return g.xVar
	}
	var n, sx, sxx float64
	xw := g.xWeights()
	g.cellsAt(func(i, _ int) {
		w := xw[i]
		n++
		sx += w
		sxx += w * w
	})
	m := sx / n
	g.xVar = math.Max(0, sxx/n-m*m) / (m * m)
	return g.xVar
}

// xWeights returns xWeight at each cell column's centre (cellsAt's i),
// computed once: a cell's weight depends on its column only.
func (g *scanGeom) xWeights() []float64 {
	if g.xw == nil {
		g.xw = make([]float64, rowsPerWafer)
		for i := range g.xw {
			g.xw[i] = g.xWeight(-g.radius + (float64(i)+0.5)*g.pitch)
		}
	}
	return g.xw
}

// cellsAt calls f with the column i and row j (g.rows) of every 2.5
// mm-class cell (the row pitch) inside the edge exclusion; the cell's
// centre is x = −R + (i+½)·pitch, y = rows[j].
func (g *scanGeom) cellsAt(f func(i, j int)) {
	for j, c := range g.chords {
		for i := range rowsPerWafer {
			x := -g.radius + (float64(i)+0.5)*g.pitch
			if math.Abs(x) < c/2 {
				f(i, j)
			}
		}
	}
}

// waferStats is the mean fluence on the wafer and its 1σ non-uniformity.
type waferStats struct{ mean, sigmaPct float64 }

// exactUniformity returns the statistics of the fluence over every cell
// inside the edge exclusion (physics reference §1.7: 3–5 mm exclusion).
func (s *scanner) exactUniformity() waferStats {
	var n, sx, sxx float64
	xw := s.g.xWeights()
	s.g.cellsAt(func(i, j int) {
		v := s.rows[j] * xw[i]
		n++
		sx += v
		sxx += v * v
	})
	if n == 0 || sx == 0 {
		return waferStats{}
	}
	m := sx / n
	return waferStats{mean: m, sigmaPct: 100 * math.Sqrt(math.Max(0, sxx/n-m*m)) / m}
}

// DoseMap is a 2-D wafer dose map: dose at (x_mm[i], y_mm[j]) is
// DoseAtomsCm2[j][i]; points outside the wafer are NaN in Go and null in
// JSON.
type DoseMap struct {
	XMM          []float64 `json:"x_mm"`
	YMM          []float64 `json:"y_mm"`
	DoseAtomsCm2 []nullRow `json:"dose_atoms_cm2"`
}

// nullRow marshals NaN as null.
type nullRow []float64

func (r nullRow) MarshalJSON() ([]byte, error) {
	return r.appendJSON(make([]byte, 0, 12*len(r)+2)), nil
}

func (r nullRow) appendJSON(b []byte) []byte {
	b = append(b, '[')
	for i, v := range r {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, v, 'g', 6, 64)
	}
	return append(b, ']')
}

func (r *nullRow) UnmarshalJSON(data []byte) error {
	var vs []*float64
	if err := json.Unmarshal(data, &vs); err != nil {
		return err
	}
	*r = make(nullRow, len(vs))
	for i, v := range vs {
		(*r)[i] = math.NaN()
		if v != nil {
			(*r)[i] = *v
		}
	}
	return nil
}

// doseMap samples the wafer's areal dose (fluence × cos tilt) on a
// mapPoints × mapPoints grid across the diameter.
func (s *scanner) doseMap(cosTilt float64) DoseMap {
	r := s.g.radius
	m := DoseMap{XMM: make([]float64, mapPoints), YMM: make([]float64, mapPoints), DoseAtomsCm2: make([]nullRow, mapPoints)}
	for i := range mapPoints {
		v := -r + 2*r*float64(i)/(mapPoints-1)
		m.XMM[i], m.YMM[i] = v, v
	}
	for j, y := range m.YMM {
		row := make(nullRow, mapPoints)
		d := s.rowAt(y) * cosTilt
		for i, x := range m.XMM {
			if x*x+y*y > r*r*(1+1e-9) {
				row[i] = math.NaN()
				continue
			}
			row[i] = d * s.g.xWeight(x)
		}
		m.DoseAtomsCm2[j] = row
	}
	return m
}

// mapStats returns the mean and 1σ (in %) of a map's points on the wafer.
func (m DoseMap) mapStats() (mean, sigmaPct float64) {
	var n, sx, sxx float64
	for _, row := range m.DoseAtomsCm2 {
		for _, v := range row {
			if math.IsNaN(v) {
				continue
			}
			n++
			sx += v
			sxx += v * v
		}
	}
	if n == 0 {
		return 0, 0
	}
	mean = sx / n
	return mean, 100 * math.Sqrt(math.Max(0, sxx/n-mean*mean)) / mean
}

// doseController is the implanter's dose integrator and scan servo. The
// integrator sums the Faraday current into a fluence, Q = ∫I dt/(n·q·A)
// with A = W·L the scanned area (physics reference §1.6), and gates the beam
// off the moment Q reaches the set-point. The servo plans a whole number of
// passes and sets the wafer speed every step in proportion to the measured
// current, v = I/(n·q·W·D_pass), so each pass delivers D_pass whatever the
// beam does (§1.7's dose servo); a trim pass makes up any shortfall.
type doseController struct {
	g          *scanGeom
	sc         *scanner
	charge     float64 // ion charge state n
	setpoint   float64 // fluence set-point, ions/cm² normal to the beam
	q          float64 // integrated (measured) fluence
	passesLeft int
	passDose   float64
	holdBelow  float64 // measured current (A) below which the servo holds the wafer
	done       bool
	underdose  bool // ended at a pass boundary short of the set-point
	// stageErr is the relative error of the slow-scan stage's speed (an
	// injected scan speed error): it moves at v·(1 + stageErr) when the
	// servo commands v.
	stageErr     float64
	stageErrFrom float64 // process time the stage error begins
	// ripple is the stage's own speed error in the current pass (its
	// servo's pass-to-pass repeatability), drawn by nextRipple.
	ripple     float64
	nextRipple func() float64
	t          float64 // process time at the start of the current step
	// passStartQ is the integrated fluence when the current pass began;
	// completed lists each completed pass as counted and planned fluence
	// until the engine takes it.
	passStartQ float64
	completed  [][2]float64
	// commanded and movingS are the servo's speed commands integrated over
	// the time the stage moved (mm) and that time (s), for its mean
	// command.
	commanded, movingS float64
}

// meanSpeed returns the servo's mean speed command while the stage
// moved, mm/s. It follows the beam current; a stage that runs fast
// shortens each pass's dose, and the servo's re-planning of the next
// passes then commands it slower.
func (c *doseController) meanSpeed() float64 {
	if c.movingS == 0 {
		return 0
	}
	return c.commanded / c.movingS
}

func newDoseController(g *scanGeom, setpoint, nominalA, recipeMMS, charge float64) *doseController {
	c := &doseController{g: g, sc: newScanner(g), charge: charge, setpoint: setpoint, holdBelow: 0.5 * nominalA}
	perPass := nominalA / (charge * elementaryCharge * (g.width / 10) * (recipeMMS / 10))
	c.passesLeft = max(1, int(math.Ceil(setpoint/perPass-1e-9)))
	c.passDose = setpoint / float64(c.passesLeft)
	return c
}

// minPassSpeedFrac is the fraction of the maximum scan speed the one
// pass of the lowest dose a beam current can paint may need: the margin
// keeps the servo, which speeds the wafer up when the beam wanders up,
// below the stage's limit.
const minPassSpeedFrac = 0.8

// maxBeamA returns the highest beam current (A, charge state 1) that can
// paint fluence setpoint in whole passes: one pass at I delivers
// I/(q·W·v), so below I/(q·W·v_max) the wafer cannot move fast enough,
// and an integrator that gates the beam at the dose would stop part-way
// across the wafer (5e13 at 5 mA: one pass at 100 mm/s is 7.8e13, and
// the wafer came out ≈ 45–70 % uniform). A real implanter's set-up lowers
// the beam current (or refuses the recipe); the engine lowers it, with a
// warning.
func maxBeamA(g *scanGeom, setpoint float64) float64 {
	return setpoint * chargeState * elementaryCharge * (g.width / 10) * (minPassSpeedFrac * maxScanMMS / 10)
}

// speed returns the servo's wafer speed (mm/s) for measured current iA.
func (c *doseController) speed(iA float64) float64 {
	if iA < c.holdBelow {
		return 0
	}
	v := iA / (c.charge * elementaryCharge * (c.g.width / 10) * c.passDose) * 10
	return math.Min(maxScanMMS, math.Max(minScanMMS, v))
}

// step runs one period dt with particle current trueA reaching the wafer
// plane and measured (compensated) Faraday current measA. It returns the
// last wafer speed and the fraction of the period the beam was on the
// scanned area. The period is cut at turn-arounds, where the next pass's
// dose is re-planned from the integrator's exact reading.
func (c *doseController) step(trueA, measA, dt float64) (vMMS, on float64) {
	left := dt
	var v float64
	for left > 1e-12 && !c.done {
		v = c.speed(measA)
		if v == 0 {
			break
		}
		va := v * (1 + c.ripple)
		if c.t >= c.stageErrFrom {
			va *= 1 + c.stageErr
		}
		seg := math.Min(left, c.sc.toTurn()/va)
		dq := measA * seg / (c.charge * elementaryCharge * c.g.scannedAreaCm2())
		if c.q+dq >= c.setpoint {
			seg *= (c.setpoint - c.q) / dq
			dq = c.setpoint - c.q
			c.done = true
		}
		turned := c.sc.move(trueA/c.charge, va, va*seg)
		c.commanded += v * seg
		c.movingS += seg
		c.q += dq
		left -= seg
		on += seg / dt
		if !turned || c.done {
			continue
		}
		c.completed = append(c.completed, [2]float64{c.q - c.passStartQ, c.passDose})
		c.passStartQ = c.q
		if c.nextRipple != nil {
			c.ripple = c.nextRipple()
		}
		c.passesLeft--
		remaining := c.setpoint - c.q
		switch {
		case c.passesLeft > 0:
			c.passDose = remaining / float64(c.passesLeft)
		case remaining > 1e-3*c.setpoint:
			c.passesLeft, c.passDose = 1, remaining
		default:
			c.done, c.underdose = true, remaining > 1e-6*c.setpoint
		}
	}
	return v, on
}
