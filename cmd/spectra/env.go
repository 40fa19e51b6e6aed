package main

import (
	"flag"
	"os"
	"strconv"
	"time"
)

// envString, envFloat, … read a SPECTRA_* variable as a flag's default.
func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv(name); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// storeFlags are the flags every command that opens the store shares.
type storeFlags struct {
	dataDir    string
	eventStore string
	natsURL    string
	noSync     bool
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.dataDir, "data-dir", envString("SPECTRA_DATA_DIR", "./data"), "data directory of the embedded event store (SPECTRA_DATA_DIR)")
	fs.StringVar(&s.eventStore, "event-store", envString("SPECTRA_EVENT_STORE", "jetstream"), "jetstream, or a kurrentdb:// / esdb:// connection string (SPECTRA_EVENT_STORE)")
	fs.StringVar(&s.natsURL, "nats", envString("SPECTRA_NATS_URL", ""), "external NATS server URL; empty embeds one (SPECTRA_NATS_URL)")
	fs.BoolVar(&s.noSync, "no-sync", envBool("SPECTRA_NO_SYNC", false), "acknowledge appends before fsync: survives a crash, not a power loss (SPECTRA_NO_SYNC)")
}
