package projections

import (
	"slices"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/r2r"
	"github.com/spectra-fab/spectra/run"
)

// maxClasses bounds a model's remembered recipe classes.
const maxClasses = 256

// recipeClasses remembers the run-to-run class of recent recipes, by kind
// and exact text: a fab runs the same few recipes over and over, and
// classifying one parses and checks it in full, the dearest step of
// folding a run's request. The zero value is ready; it is not safe for
// concurrent use (a model calls it under its lock).
type recipeClasses struct {
	m map[process.Kind]map[string]classified
	n int
}

type classified struct {
	class r2r.Class
	err   error
}

// of returns run.R2RClass(kind, recipe).
func (c *recipeClasses) of(kind process.Kind, recipe []byte) (r2r.Class, error) {
	if v, ok := c.m[kind][string(recipe)]; ok {
		v.class.Loops = slices.Clone(v.class.Loops)
		return v.class, v.err
	}
	rc, err := run.R2RClass(kind, recipe)
	if c.m == nil || c.n >= maxClasses {
		c.m, c.n = map[process.Kind]map[string]classified{}, 0
	}
	if c.m[kind] == nil {
		c.m[kind] = map[string]classified{}
	}
	c.m[kind][string(recipe)] = classified{class: rc, err: err}
	c.n++
	rc.Loops = slices.Clone(rc.Loops)
	return rc, err
}
