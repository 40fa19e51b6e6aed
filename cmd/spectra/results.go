package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// unitSuffixes give a result field's unit from its name, as docs/results.md
// tabulates them (TestResultUnitsMatchDocs holds the two together).
var unitSuffixes = []struct{ suffix, unit string }{
	{"_atoms_cm2", "cm⁻²"},
	{"_ohm_sq", "Ω/sq"},
	{"_cm3", "cm⁻³"},
	{"_mm_s", "mm/s"},
	{"_pct", "%"},
	{"_nm", "nm"},
	{"_um", "µm"},
	{"_ma", "mA"},
	{"_torr", "Torr"},
	{"_c", "°C"},
	{"_s", "s"},
	{"_t", "T"},
	{"_v", "V"},
	{"_kev", "keV"},
}

// unitExceptions are the fields whose name does not end in their unit.
var unitExceptions = map[string]string{
	"thermal_budget": "cm²",
}

// unitOf is the unit of a result field ("vm_prediction.junction_depth_um"
// is in µm); "" for a count or a ratio.
func unitOf(field string) string {
	name := field[strings.LastIndex(field, ".")+1:]
	if u, ok := unitExceptions[name]; ok {
		return u
	}
	for _, s := range unitSuffixes {
		if strings.HasSuffix(name, s.suffix) {
			return s.unit
		}
	}
	return ""
}

// notResults are the fields of a run's view that describe the run, not
// what it measured.
var notResults = map[string]bool{
	"status": true, "progress": true, "current_step": true, "job_id": true, "step": true, "run_id": true,
	"org_id": true, "user_id": true, "kind": true, "recipe": true, "created_at": true, "started_at": true,
	"completed_at": true, "logs_uri": true, "position": true, "revision": true, "priority": true,
	"retry_count": true, "e40_state": true, "duration_seconds": true, "error_message": true, "artifacts": true,
	"tool_id": true, "message": true, "idempotency_key": true,
}

// resultRow is one line of a results table.
type resultRow struct{ name, value, unit string }

// resultRows flattens a run's results (objects one level deep, as
// docs/results.md names them) into sorted rows with rounded values.
// Lists (warnings) come back as notes, one per item, to print below the
// table.
func resultRows(data json.RawMessage) (rows []resultRow, notes, artifacts []string) {
	var d map[string]any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	_ = dec.Decode(&d)
	var add func(name string, v any)
	add = func(name string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, vv := range v {
				if _, nested := vv.(map[string]any); !nested {
					add(name+"."+k, vv)
				}
			}
		case []any:
			for _, x := range v {
				notes = append(notes, fmt.Sprintf("%s: %v", name, x))
			}
		case json.Number:
			f, err := v.Float64()
			if err != nil {
				rows = append(rows, resultRow{name, v.String(), unitOf(name)})
				return
			}
			rows = append(rows, resultRow{name, round(f), unitOf(name)})
		case nil:
		default:
			rows = append(rows, resultRow{name, fmt.Sprint(v), ""})
		}
	}
	for k, v := range d {
		if k == "artifacts" {
			if list, ok := v.([]any); ok {
				for _, a := range list {
					if m, ok := a.(map[string]any); ok {
						artifacts = append(artifacts, fmt.Sprint(m["name"]))
					}
				}
			}
		}
		if notResults[k] {
			continue
		}
		add(k, v)
	}
	slices.SortFunc(rows, func(a, b resultRow) int { return strings.Compare(a.name, b.name) })
	slices.Sort(notes)
	return rows, notes, artifacts
}

// round shows a value to four significant digits: what the simulation's
// models and the tools' metrology resolve, and no more. Integers stay
// whole; very large and very small magnitudes go to scientific notation.
func round(f float64) string {
	switch a := math.Abs(f); {
	case f == math.Trunc(f) && a < 1e6:
		return strconv.FormatFloat(f, 'f', -1, 64)
	case a >= 1e5 || a < 1e-3:
		return strconv.FormatFloat(f, 'e', 3, 64)
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}

// printResults writes a run's results as a table: name, value, unit.
func printResults(w io.Writer, data json.RawMessage) error {
	rows, notes, artifacts := resultRows(data)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tVALUE\tUNIT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.name, r.value, r.unit)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	if len(artifacts) > 0 {
		fmt.Fprintf(w, "artifacts: %s\n", strings.Join(artifacts, ", "))
	}
	return nil
}
