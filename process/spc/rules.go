package spc

import "fmt"

// Rule names, as Violation.Rule and process.Alarm.Rule carry them. Nelson's
// rules 1, 5 and 6 are Western Electric rules 1, 2 and 3 and are reported
// under those names.
const (
	WE1     = "WE1"     // one point beyond a 3σ control limit
	WE2     = "WE2"     // 2 of 3 consecutive points beyond 2σ, same side
	WE3     = "WE3"     // 4 of 5 consecutive points beyond 1σ, same side
	WE4     = "WE4"     // 8 consecutive points on the same side of the centre
	Nelson2 = "NELSON2" // 9 consecutive points on the same side of the centre
	Nelson3 = "NELSON3" // 6 points in a row steadily increasing or decreasing
	Nelson4 = "NELSON4" // 14 points in a row alternating up and down
	Nelson7 = "NELSON7" // 15 points in a row within 1σ, either side
	Nelson8 = "NELSON8" // 8 points in a row beyond 1σ, either side
)

// WesternElectric are Western Electric rules 1–4, what Rules and a default
// Monitor check: zero-state in-control ARL ≈ 92 points (Champ & Woodall
// 1987; physics reference §5.7).
var WesternElectric = []string{WE1, WE2, WE3, WE4}

// Nelson are Nelson's eight rules (J. Quality Technology 16(4), 237 (1984)),
// with rules 1, 5 and 6 under their Western Electric names.
var Nelson = []string{WE1, Nelson2, Nelson3, Nelson4, WE2, WE3, Nelson7, Nelson8}

// window is the longest history any rule needs (Nelson 7).
const window = 15

// Violation is a rule broken by a sequence of points, flagged at the point
// that completes the pattern.
type Violation struct {
	Index   int     `json:"index"`   // point number from 0
	Rule    string  `json:"rule"`    // WE1…WE4, NELSON2…NELSON8
	Message string  `json:"message"` // human-readable, names the rule
	Value   float64 `json:"value"`   // the completing point
}

// Rules checks points against l with Western Electric rules 1–4 and returns
// the violations in point order (rule order within a point). A pattern is
// reported at every point that completes it, so a run of 10 points above the
// centre breaks WE4 at its 8th, 9th and 10th point; the 2-of-3 and 4-of-5
// rules fire only at a point that is itself beyond the zone. At the start
// of the sequence the k-of-m rules count over the points there are (two
// points beyond 2σ break WE2 at point 1).
func Rules(points []float64, l Limits) []Violation {
	return Check(points, l, WesternElectric...)
}

// Check is Rules with the given rules (WE1…WE4, NELSON2…NELSON8), for
// example Check(points, l, Nelson...). It panics on an unknown rule name.
func Check(points []float64, l Limits, rules ...string) []Violation {
	m := NewMonitor(l, rules...)
	var out []Violation
	for _, x := range points {
		out = append(out, m.Add(x)...)
	}
	return out
}

// Monitor checks the rules point by point as a stream arrives, with the same
// results as Rules on the whole sequence. It keeps only the last 15 points.
// A Monitor is deterministic and not safe for concurrent use.
type Monitor struct {
	l     Limits
	sigma float64
	rules []ruleFunc
	names []string
	buf   [window]float64 // ring of the last points
	n     int             // points added
}

type ruleFunc func(m *Monitor) (msg string, ok bool)

var ruleFuncs = map[string]ruleFunc{
	WE1:     (*Monitor).we1,
	WE2:     (*Monitor).we2,
	WE3:     (*Monitor).we3,
	WE4:     func(m *Monitor) (string, bool) { return m.run(WE4, 8) },
	Nelson2: func(m *Monitor) (string, bool) { return m.run(Nelson2, 9) },
	Nelson3: (*Monitor).nelson3,
	Nelson4: (*Monitor).nelson4,
	Nelson7: (*Monitor).nelson7,
	Nelson8: (*Monitor).nelson8,
}

// NewMonitor returns a Monitor of l that checks rules, or Western Electric
// rules 1–4 when none are given. It panics on an unknown rule name.
func NewMonitor(l Limits, rules ...string) *Monitor {
	if len(rules) == 0 {
		rules = WesternElectric
	}
	m := &Monitor{l: l, sigma: l.sigma(), names: rules}
	for _, r := range rules {
		f, ok := ruleFuncs[r]
		if !ok {
			panic(fmt.Sprintf("spc.NewMonitor: unknown rule %q", r))
		}
		m.rules = append(m.rules, f)
	}
	return m
}

// Limits returns the limits m checks against.
func (m *Monitor) Limits() Limits { return m.l }

// Len returns how many points m has seen.
func (m *Monitor) Len() int { return m.n }

// Add appends x to the history and returns the rules it completes, with
// Index = its point number (from 0). It returns nil when none. A NaN point
// raises nothing and breaks every run it falls in.
func (m *Monitor) Add(x float64) []Violation {
	m.buf[m.n%window] = x
	m.n++
	var out []Violation
	for i, f := range m.rules {
		if msg, ok := f(m); ok {
			out = append(out, Violation{Index: m.n - 1, Rule: m.names[i], Message: msg, Value: x})
		}
	}
	return out
}

// at returns the point back places before the newest (0 = newest); the
// caller ensures back < min(m.n, window).
func (m *Monitor) at(back int) float64 { return m.buf[(m.n-1-back)%window] }

// side returns +1 if x is beyond Center + k·σ, −1 if beyond Center − k·σ,
// 0 otherwise. k = 0 gives the side of the centre line.
func (m *Monitor) side(x, k float64) int {
	switch {
	case x > m.l.Center+k*m.sigma:
		return 1
	case x < m.l.Center-k*m.sigma:
		return -1
	}
	return 0
}

func sideWord(s int) string {
	if s > 0 {
		return "above"
	}
	return "below"
}

func (m *Monitor) we1() (string, bool) {
	x := m.at(0)
	switch {
	case x > m.l.UCL:
		return fmt.Sprintf("WE1: point %d = %.4g is above the upper control limit %.4g (beyond 3σ)", m.n-1, x, m.l.UCL), true
	case x < m.l.LCL:
		return fmt.Sprintf("WE1: point %d = %.4g is below the lower control limit %.4g (beyond 3σ)", m.n-1, x, m.l.LCL), true
	}
	return "", false
}

// kOfM reports whether the newest point is beyond kσ on some side and, with
// it, at least need of the last m points (or of all there are) are beyond
// kσ on that side.
func (m *Monitor) kOfM(k float64, need, of int) (int, bool) {
	s := m.side(m.at(0), k)
	if s == 0 {
		return 0, false
	}
	count := 0
	for back := range min(of, m.n) {
		if m.side(m.at(back), k) == s {
			count++
		}
	}
	return s, count >= need
}

func (m *Monitor) we2() (string, bool) {
	s, ok := m.kOfM(2, 2, 3)
	if !ok {
		return "", false
	}
	return fmt.Sprintf("WE2: 2 of 3 consecutive points beyond 2σ %s the centre line %.4g, ending at point %d = %.4g",
		sideWord(s), m.l.Center, m.n-1, m.at(0)), true
}

func (m *Monitor) we3() (string, bool) {
	s, ok := m.kOfM(1, 4, 5)
	if !ok {
		return "", false
	}
	return fmt.Sprintf("WE3: 4 of 5 consecutive points beyond 1σ %s the centre line %.4g, ending at point %d = %.4g",
		sideWord(s), m.l.Center, m.n-1, m.at(0)), true
}

// run reports whether the last n points are all on one side of the centre.
func (m *Monitor) run(rule string, n int) (string, bool) {
	if m.n < n {
		return "", false
	}
	s := m.side(m.at(0), 0)
	if s == 0 {
		return "", false
	}
	for back := 1; back < n; back++ {
		if m.side(m.at(back), 0) != s {
			return "", false
		}
	}
	return fmt.Sprintf("%s: %d consecutive points %s the centre line %.4g, ending at point %d = %.4g",
		rule, n, sideWord(s), m.l.Center, m.n-1, m.at(0)), true
}

func (m *Monitor) nelson3() (string, bool) {
	const n = 6
	if m.n < n {
		return "", false
	}
	dir := 0
	for back := range n - 1 {
		d := 0
		switch newer, older := m.at(back), m.at(back+1); {
		case newer > older:
			d = 1
		case newer < older:
			d = -1
		}
		if d == 0 || (dir != 0 && d != dir) {
			return "", false
		}
		dir = d
	}
	word := "increasing"
	if dir < 0 {
		word = "decreasing"
	}
	return fmt.Sprintf("NELSON3: %d points in a row steadily %s, ending at point %d = %.4g", n, word, m.n-1, m.at(0)), true
}

func (m *Monitor) nelson4() (string, bool) {
	const n = 14
	if m.n < n {
		return "", false
	}
	prev := 0
	for back := range n - 1 {
		d := 0
		switch newer, older := m.at(back), m.at(back+1); {
		case newer > older:
			d = 1
		case newer < older:
			d = -1
		}
		if d == 0 || d == prev {
			return "", false
		}
		prev = d
	}
	return fmt.Sprintf("NELSON4: %d points in a row alternating up and down, ending at point %d = %.4g", n, m.n-1, m.at(0)), true
}

func (m *Monitor) nelson7() (string, bool) {
	const n = 15
	if m.n < n {
		return "", false
	}
	for back := range n {
		if m.side(m.at(back), 1) != 0 {
			return "", false
		}
	}
	return fmt.Sprintf("NELSON7: %d points in a row within 1σ of the centre line %.4g (limits too wide or stratified data), ending at point %d = %.4g",
		n, m.l.Center, m.n-1, m.at(0)), true
}

func (m *Monitor) nelson8() (string, bool) {
	const n = 8
	if m.n < n {
		return "", false
	}
	for back := range n {
		if m.side(m.at(back), 1) == 0 {
			return "", false
		}
	}
	return fmt.Sprintf("NELSON8: %d points in a row beyond 1σ of the centre line %.4g, none within it (mixture), ending at point %d = %.4g",
		n, m.l.Center, m.n-1, m.at(0)), true
}
