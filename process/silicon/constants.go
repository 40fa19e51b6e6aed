package silicon

// Physical constants, CODATA 2018 exact values as the physics reference §0
// states them.
const (
	// Boltzmann is k_B in eV/K.
	Boltzmann = 8.617333262e-5
	// Charge is the elementary charge q in C.
	Charge = 1.602176634e-19
	// ZeroCelsius is 0 °C in K.
	ZeroCelsius = 273.15
)

// kelvin converts °C to K.
func kelvin(tempC float64) float64 { return tempC + ZeroCelsius }
