package ion

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/spectra-fab/spectra/process"
)

// Artifact names an ion run stores.
const (
	ArtifactTelemetry = "telemetry.json"      // every 100 ms sample, columnar
	ArtifactDoseMap   = "dose_map.json"       // the 2-D wafer dose map (profile_2d's shape)
	ArtifactChart     = "beam_dose_chart.svg" // beam current and integrated dose over time
)

func (e *Engine) artifacts() []process.Artifact {
	dm := e.dc.sc.doseMap(e.cosT)
	return []process.Artifact{
		{Name: ArtifactTelemetry, ContentType: "application/json", Data: e.telemetryJSON()},
		{Name: ArtifactDoseMap, ContentType: "application/json", Data: dm.appendJSON(nil)},
		{Name: ArtifactChart, ContentType: "image/svg+xml", Data: e.chartSVG()},
	}
}

// telemetryJSON writes {"time_s":[…], "beam_current_ma":[…], …} in
// TelemetryFields order, every sample at full resolution.
func (e *Engine) telemetryJSON() []byte {
	b := make([]byte, 0, len(e.telOf(FieldTime))*len(TelemetryFields)*20+256)
	b = append(b, '{')
	for k, f := range TelemetryFields {
		if k > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f)
		b = append(b, ":["...)
		for i, v := range e.telOf(f) {
			if i > 0 {
				b = append(b, ',')
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				b = append(b, "null"...)
				continue
			}
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSON appends the map as json.Marshal writes it, byte for byte,
// without reflection or the validation pass json.Marshal makes over
// every MarshalJSON's output (the map is 61 × 61 numbers a run).
func (m DoseMap) appendJSON(b []byte) []byte {
	b = slices.Grow(b, (len(m.XMM)+len(m.YMM))*20+len(m.DoseAtomsCm2)*len(m.XMM)*13+64)
	b = append(b, `{"x_mm":`...)
	b = appendFloats(b, m.XMM)
	b = append(b, `,"y_mm":`...)
	b = appendFloats(b, m.YMM)
	b = append(b, `,"dose_atoms_cm2":`...)
	if m.DoseAtomsCm2 == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range m.DoseAtomsCm2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendFloats appends vs as json.Marshal writes a []float64 (finite
// numbers only: the map's axes).
func appendFloats(b []byte, vs []float64) []byte {
	if vs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONFloat(b, v)
	}
	return append(b, ']')
}

// appendJSONFloat is encoding/json's float64 encoder: the shortest
// representation, in exponent form below 1e-6 and from 1e21, with a
// one-digit negative exponent written without its leading zero.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// chartSVG draws beam current (top) and integrated dose (bottom) against
// process time, at most 1000 points per line.
func (e *Engine) chartSVG() []byte {
	const (
		w, h            = 800, 480
		left, right     = 80, 20
		panelH, gap, tp = 180, 60, 40
	)
	ts := e.telOf(FieldTime)
	var b bytes.Buffer
	b.Grow(2*min(len(ts), 2000)*14 + 2048)
	var pt []byte
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">%s %g keV, %.3g atoms/cm², %g mA</text>`+"\n", left, e.r.Species, e.r.EnergyKeV, e.r.DoseAtomsCm2, e.r.BeamCurrentMA)
	tMax := 1.0
	if len(ts) > 0 {
		tMax = math.Max(ts[len(ts)-1], 1e-3)
	}
	panel := func(top int, field, label, color string, target float64) {
		ys := e.telOf(field)
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range ys {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		if target > 0 {
			lo, hi = math.Min(lo, target), math.Max(hi, target)
		}
		if len(ys) == 0 || hi <= lo {
			lo, hi = 0, math.Max(1, hi)
		}
		pad := (hi - lo) * 0.05
		lo, hi = lo-pad, hi+pad
		pw := float64(w - left - right)
		px := func(t float64) float64 { return float64(left) + pw*t/tMax }
		py := func(v float64) float64 { return float64(top+panelH) - float64(panelH)*(v-lo)/(hi-lo) }
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", left, top, w-left-right, panelH)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", left, top-6, label)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%.4g</text>`+"\n", left-4, top+10, hi)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%.4g</text>`+"\n", left-4, top+panelH, lo)
		if target > 0 {
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c33" stroke-dasharray="4 3"/>`+"\n", left, py(target), w-right, py(target))
		}
		step := max(1, len(ys)/1000)
		b.WriteString(`<polyline fill="none" stroke="` + color + `" stroke-width="1.2" points="`)
		for i := 0; i < len(ys); i += step {
			pt = appendPoint(pt[:0], px(ts[i]), py(ys[i]))
			b.Write(pt)
		}
		b.WriteString("\"/>\n")
	}
	panel(tp, FieldBeamCurrent, "beam current (mA)", "#1f77b4", e.r.BeamCurrentMA)
	panel(tp+panelH+gap, FieldDose, "integrated dose (atoms/cm²)", "#2ca02c", e.r.DoseAtomsCm2*e.scale)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">process time (s), 0–%.1f</text>`+"\n", left+(w-left-right)/2, h-12, tMax)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// appendPoint appends an SVG point as fmt's "%.1f,%.1f " writes it.
func appendPoint(b []byte, x, y float64) []byte {
	b = strconv.AppendFloat(b, x, 'f', 1, 64)
	b = append(b, ',')
	b = strconv.AppendFloat(b, y, 'f', 1, 64)
	return append(b, ' ')
}
