package events

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// The metadata's JSON in a link is json.Marshal's, byte for byte, whatever
// the fields hold (plain ASCII is written directly, anything else goes
// through encoding/json).
func TestMetadataJSONMatchesMarshal(t *testing.T) {
	values := []string{"", "org-1", "a b~", "<x>", "a&b", `q"uote`, `back\slash`, "tab\t", "é", "\u2028", "\xff", "0123456789abcdef0123456789abcdef"}
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func() string { return values[rng.IntN(len(values))] }
	for range 2000 {
		md := Metadata{OrgID: pick(), UserID: pick(), Role: pick(), RequestID: pick(), CorrelationID: pick(), CausationID: pick(),
			Node: pick(), TraceID: pick(), SpanID: pick(), Prev: pick(), Seal: pick(), SealSig: pick()}
		if rng.IntN(2) == 0 { // many all-plain ones
			md = Metadata{OrgID: "org-1", UserID: "u", Node: "node-1", CausationID: "ev-1", Prev: pick()}
		}
		want, err := json.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendMetadataJSON(nil, &md)
		if ok && string(got) != string(want) {
			t.Fatalf("appendMetadataJSON(%+v) = %s, json.Marshal gives %s", md, got, want)
		}
		if plain := !strings.ContainsAny(string(want), `\<>&`) && isASCII(string(want)); ok != plain {
			t.Fatalf("appendMetadataJSON(%+v) took it: %v, want %v (%s)", md, ok, plain, want)
		}
		var enc []byte
		if enc, ok = appendMetadataJSON(nil, &md); !ok {
			enc = want
		}
		if Link("T.v1", []byte(`{}`), md) != linkVia(enc) {
			t.Fatalf("Link(%+v) differs from the link over json.Marshal's bytes", md)
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// linkVia is Link's hash of type "T.v1" and data {} over mdJSON as given.
func linkVia(mdJSON []byte) string {
	h := sha256.New()
	h.Write([]byte(chainTag))
	var n [binary.MaxVarintLen64]byte
	for _, f := range [][]byte{[]byte("T.v1"), []byte(`{}`), mdJSON} {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil))
}
