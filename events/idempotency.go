package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// IdempotencyStream is the stream of an organisation's idempotency key:
// its one IdempotencyKeyClaimed event names the run the key created.
func IdempotencyStream(orgID, key string) string {
	return "idem-" + strings.ReplaceAll(DeriveID(orgID, key), "-", "")
}

// RequestFingerprint identifies what a create asks for: its kind and its
// body in canonical form (object keys sorted, insignificant space
// dropped), so that a retry of the same request matches whatever its JSON
// layout. A body that is not JSON is taken as it is.
func RequestFingerprint(kind string, body []byte) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&v) == nil {
		if b, err := json.Marshal(v); err == nil {
			body = b
		}
	}
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}
