package rtp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/spectra-fab/spectra/process"
)

// Artifact names.
const (
	ArtifactTelemetry = "telemetry.json"
	ArtifactProfile   = "temperature_profile.svg"
	ArtifactControl   = "control_chart.svg"
	ArtifactAlerts    = "spc_alerts.json"
	ArtifactVM        = "vm_prediction.json"
)

// artifacts renders the run's files: the full-resolution telemetry as
// columnar JSON (one array per key, every 100 ms sample), the
// temperature-profile and control charts as SVG, the alarms and the VM
// prediction.
func (e *Engine) artifacts(vm VMResult) []process.Artifact {
	var tel bytes.Buffer
	tel.WriteByte('{')
	for i, k := range TelemetryKeys {
		if i > 0 {
			tel.WriteByte(',')
		}
		fmt.Fprintf(&tel, "%q:[", k)
		for j, v := range e.tel[i] {
			if j > 0 {
				tel.WriteByte(',')
			}
			tel.Write(strconv.AppendFloat(nil, round(v, 4), 'f', -1, 64))
		}
		tel.WriteByte(']')
	}
	tel.WriteByte('}')

	alerts, _ := json.Marshal(append([]process.Alarm{}, e.alarms...))
	vmJSON, _ := json.Marshal(vm)

	times := e.tel[0]
	profile := svgChart{
		Title:  "RTP temperature profile",
		YLabel: "Temperature (°C)",
		Series: []svgSeries{
			{Name: "set-point", Color: "#1f77b4", X: times, Y: e.tel[1], Dash: true},
			{Name: "measured", Color: "#d62728", X: times, Y: e.tel[2]},
		},
	}
	control := svgChart{
		Title:  "RTP control: lamp power and ramp error",
		YLabel: "Lamp power (%) / ramp error (°C)",
		Series: []svgSeries{
			{Name: "lamp power %", Color: "#ff7f0e", X: times, Y: e.tel[3]},
			{Name: "ramp error °C", Color: "#2ca02c", X: times, Y: e.tel[4]},
		},
	}
	return []process.Artifact{
		{Name: ArtifactTelemetry, ContentType: "application/json", Data: tel.Bytes()},
		{Name: ArtifactProfile, ContentType: "image/svg+xml", Data: profile.render()},
		{Name: ArtifactControl, ContentType: "image/svg+xml", Data: control.render()},
		{Name: ArtifactAlerts, ContentType: "application/json", Data: alerts},
		{Name: ArtifactVM, ContentType: "application/json", Data: vmJSON},
	}
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

type svgSeries struct {
	Name  string
	Color string
	X, Y  []float64
	Dash  bool
}

type svgChart struct {
	Title  string
	YLabel string
	Series []svgSeries
}

// render draws the chart as a self-contained SVG: axes with ticks, one
// polyline per series (decimated to at most ~1000 points) and a legend.
func (c svgChart) render() []byte {
	const w, h = 900.0, 420.0
	const left, right, top, bottom = 70.0, 20.0, 40.0, 50.0
	pw, ph := w-left-right, h-top-bottom
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for i := range s.X {
			xmin, xmax = min(xmin, s.X[i]), max(xmax, s.X[i])
			ymin, ymax = min(ymin, s.Y[i]), max(ymax, s.Y[i])
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax, ymin, ymax = 0, 1, 0, 1
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	ystep := niceStep((ymax - ymin) / 6)
	ymin = math.Floor(ymin/ystep) * ystep
	ymax = math.Ceil(ymax/ystep) * ystep
	if ymax == ymin {
		ymax = ymin + ystep
	}
	sx := func(x float64) float64 { return left + (x-xmin)/(xmax-xmin)*pw }
	sy := func(y float64) float64 { return top + ph - (y-ymin)/(ymax-ymin)*ph }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`, w, h)
	fmt.Fprintf(&b, `<text x="%g" y="22" text-anchor="middle" font-size="15">%s</text>`, w/2, escape(c.Title))
	for y := ymin; y <= ymax+ystep/2; y += ystep {
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`, left, sy(y), left+pw, sy(y))
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end">%s</text>`, left-6, sy(y)+4, strconv.FormatFloat(round(y, 6), 'g', 6, 64))
	}
	xstep := niceStep((xmax - xmin) / 8)
	for x := math.Ceil(xmin/xstep) * xstep; x <= xmax+1e-9; x += xstep {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#999"/>`, sx(x), top+ph, sx(x), top+ph+5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, sx(x), top+ph+18, strconv.FormatFloat(round(x, 6), 'g', 6, 64))
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#333"/>`, left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">Time (s)</text>`, left+pw/2, h-12)
	fmt.Fprintf(&b, `<text x="16" y="%g" text-anchor="middle" transform="rotate(-90 16 %g)">%s</text>`, top+ph/2, top+ph/2, escape(c.YLabel))
	for si, s := range c.Series {
		stride := max(len(s.X)/1000, 1)
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="6 3"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="`, s.Color, dash)
		for i := 0; i < len(s.X); i += stride {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", sx(s.X[i]), sy(s.Y[i]))
		}
		b.WriteString(`"/>`)
		ly := top + 14 + float64(si)*16
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"%s/>`, left+pw-150, ly-4, left+pw-125, ly-4, s.Color, dash)
		fmt.Fprintf(&b, `<text x="%g" y="%g">%s</text>`, left+pw-120, ly, escape(s.Name))
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}

// niceStep rounds a raw tick step to 1, 2 or 5 × 10ⁿ.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow10(int(math.Floor(math.Log10(raw))))
	switch f := raw / p; {
	case f <= 1:
		return p
	case f <= 2:
		return 2 * p
	case f <= 5:
		return 5 * p
	}
	return 10 * p
}

func escape(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
