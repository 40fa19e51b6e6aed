package silicon

import "strings"

// Carrier is the majority carrier a dopant provides.
type Carrier int

// Carriers.
const (
	Electron Carrier = iota // donors: P, As, Sb
	Hole                    // acceptors: B, BF2, In
)

func (c Carrier) String() string {
	switch c {
	case Electron:
		return "electron"
	case Hole:
		return "hole"
	}
	return "carrier(?)"
}

// Dopant species names, as recipes spell them. Functions that take a species
// match it case-insensitively.
const (
	Boron      = "B"
	BoronF2    = "BF2"
	Indium     = "In"
	Phosphorus = "P"
	Arsenic    = "As"
	Antimony   = "Sb"
)

// Dopants lists the species this package knows, acceptors first.
var Dopants = []string{Boron, BoronF2, Indium, Phosphorus, Arsenic, Antimony}

// canonical returns the canonical spelling of species, or "" when it is not a
// dopant this package knows.
func canonical(species string) string {
	for _, d := range Dopants {
		if strings.EqualFold(species, d) {
			return d
		}
	}
	return ""
}

// IsDopant reports whether species is one of Dopants (case-insensitively).
// Functions of this package return zero for other species, so callers that
// take species from a recipe should validate it with IsDopant first.
func IsDopant(species string) bool { return canonical(species) != "" }

// DopantCarrier returns the majority carrier species provides: Hole for B,
// BF2 and In, Electron for P, As and Sb. It returns Electron for a species
// it does not know (see IsDopant).
func DopantCarrier(species string) Carrier {
	switch canonical(species) {
	case Boron, BoronF2, Indium:
		return Hole
	}
	return Electron
}

// diffusing returns the species that actually diffuses: the B of BF2.
func diffusing(species string) string {
	if s := canonical(species); s != BoronF2 {
		return s
	}
	return Boron
}
