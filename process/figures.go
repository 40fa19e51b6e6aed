package process

import "math"

// Figures collects finite named values: the helper Result.Figures and
// Observations.Values implementations share. A nil pointer or a value that
// is not finite (NaN, ±Inf) is left out.
type Figures map[string]float64

// Add records v under name when it is finite.
func (f Figures) Add(name string, v float64) Figures {
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		f[name] = v
	}
	return f
}

// AddPtr records *v under name when v is set and finite.
func (f Figures) AddPtr(name string, v *float64) Figures {
	if v != nil {
		f.Add(name, *v)
	}
	return f
}
