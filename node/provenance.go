package node

import (
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/spectra-fab/spectra/events"
)

// readSealKey reads the key that signs run seals ("" gives none).
func readSealKey(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	key, err := events.ParseSealKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("seal key %s: %w", path, err)
	}
	return key, nil
}

// sealPublicKey is the public half of key (nil for none).
func sealPublicKey(key ed25519.PrivateKey) ed25519.PublicKey {
	if key == nil {
		return nil
	}
	return key.Public().(ed25519.PublicKey)
}
