package actors

import (
	"encoding/json"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/rtp"
)

// factory adapts a process package's ParseRecipe and NewEngine to an
// EngineFactory.
type factory[R any, E process.Engine] struct {
	parse func([]byte) (R, error)
	build func(R, process.Options) (E, error)
}

func (f factory[R, E]) Validate(recipe json.RawMessage) error {
	_, err := f.parse(recipe)
	return err
}

func (f factory[R, E]) New(recipe json.RawMessage, opts process.Options) (process.Engine, error) {
	r, err := f.parse(recipe)
	if err != nil {
		return nil, err
	}
	return f.build(r, opts)
}

// Engines returns the factories of every process kind Spectra runs.
func Engines() map[process.Kind]EngineFactory {
	return map[process.Kind]EngineFactory{
		process.KindIon: factory[ion.Recipe, *ion.Engine]{parse: ion.ParseRecipe, build: ion.NewEngine},
		process.KindRTP: factory[rtp.Recipe, *rtp.Engine]{parse: rtp.ParseRecipe, build: rtp.NewEngine},
	}
}
