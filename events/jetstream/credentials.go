package jetstream

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// CredentialsFile is the file in the data directory that holds the
// credentials StartServer generates for a listening server.
const CredentialsFile = "nats-credentials.json"

// Credentials are a NATS user and password: what clients of a listening
// embedded server present (and, in a cluster, what its routes will).
type Credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// LogValue keeps the password out of logs.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", c.User), slog.String("password", "REDACTED"))
}

func (c Credentials) check() error {
	if c.User == "" || len(c.Password) < 16 {
		return errors.New("credentials: a user and a password of at least 16 characters are required")
	}
	return nil
}

// LoadOrCreateCredentials reads the credentials kept in path, creating
// them the first time with a random password (file mode 0600), so that
// they survive restarts and tools on the same host can read them.
func LoadOrCreateCredentials(path string) (Credentials, error) {
	var c Credentials
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &c); err != nil {
			return Credentials{}, fmt.Errorf("read %s: %w", path, err)
		}
		if err := c.check(); err != nil {
			return Credentials{}, fmt.Errorf("read %s: %w", path, err)
		}
		return c, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Credentials{}, fmt.Errorf("read credentials: %w", err)
	}
	c = Credentials{User: "spectra", Password: rand.Text()}
	if b, err = json.MarshalIndent(c, "", "  "); err != nil {
		return Credentials{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return Credentials{}, fmt.Errorf("write credentials: %w", err)
	}
	// O_EXCL: two processes starting at once agree on one file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateCredentials(path)
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("write credentials: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return Credentials{}, fmt.Errorf("write credentials: %w", err)
	}
	if err := f.Close(); err != nil {
		return Credentials{}, fmt.Errorf("write credentials: %w", err)
	}
	return c, nil
}

// NKeyFile is the file in the data directory that holds the NKey seed
// StartServer generates for a listening server: the user key clients
// sign the server's nonce with (nats --nkey DATA_DIR/nats-user.nk).
const NKeyFile = "nats-user.nk"

// LoadOrCreateNKey reads the user NKey seed kept in path, creating it the
// first time (file mode 0600), and returns the key's public part, which
// the server authorizes.
func LoadOrCreateNKey(path string) (public string, err error) {
	if b, err := os.ReadFile(path); err == nil {
		return nkeyPublic(path, b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read nkey: %w", err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", fmt.Errorf("create nkey: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", fmt.Errorf("create nkey: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", fmt.Errorf("write nkey: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateNKey(path) // another process wrote it first
	}
	if err != nil {
		return "", fmt.Errorf("write nkey: %w", err)
	}
	if _, err := f.Write(append(seed, '\n')); err != nil {
		f.Close()
		return "", fmt.Errorf("write nkey: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write nkey: %w", err)
	}
	return kp.PublicKey()
}

// NKeyPublic reads a user NKey seed file and returns the key's public
// part.
func NKeyPublic(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read nkey: %w", err)
	}
	return nkeyPublic(path, b)
}

func nkeyPublic(path string, b []byte) (string, error) {
	kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
	if err != nil {
		return "", fmt.Errorf("read nkey %s: %w", path, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("read nkey %s: %w", path, err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("read nkey %s: not a user seed (SU…)", path)
	}
	return pub, nil
}
