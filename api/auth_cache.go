package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"sync"
	"time"
)

// A verifier remembers the tokens it verified, so that a client sending
// the same token with every request pays for its signature and claims
// once. What is remembered is only a success; the entry is keyed by the
// whole raw token (signature included), ends when the token's exp (plus
// the leeway verification grants) passes, and for a token of an identity
// provider holds the key that verified it: a hit asks the key set for
// that key again, so a key removed from the JWKS file stops its tokens as
// it did without the cache. Session revocation (verifySession) is checked
// on every request, after this.
const (
	// tokenCacheSize bounds the tokens remembered.
	tokenCacheSize = 10_000
	// maxCachedToken is the longest token remembered: bigger ones are
	// verified every time, so the cache holds at most
	// tokenCacheSize × maxCachedToken bytes of keys.
	maxCachedToken = 4 << 10
)

type tokenCache struct {
	mu  sync.RWMutex
	m   map[string]cachedToken
	max int
	now func() time.Time
}

type cachedToken struct {
	p     Principal
	until time.Time // the token is refused from then on (expired)
	kid   string    // for a JWKS token: its key id, algorithm and key
	alg   string
	key   any
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{m: map[string]cachedToken{}, max: size, now: time.Now}
}

// get returns the principal of a token verified before and still valid.
func (c *tokenCache) get(v verifier, raw string) (Principal, bool) {
	c.mu.RLock()
	e, ok := c.m[raw]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.until) {
		return Principal{}, false
	}
	if e.kid != "" {
		if v.jwks == nil {
			return Principal{}, false
		}
		k, err := v.jwks.key(e.kid, e.alg)
		if err != nil || !sameKey(k, e.key) {
			c.mu.Lock()
			delete(c.m, raw)
			c.mu.Unlock()
			return Principal{}, false
		}
	}
	return e.p, true
}

// put remembers a verified token. When the cache is full, the expired
// entries among the first few the map yields (an arbitrary start) go, or
// else one of them.
func (c *tokenCache) put(raw string, e cachedToken) {
	if len(raw) > maxCachedToken {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[raw]; !ok && len(c.m) >= c.max {
		now, victim, seen := c.now(), "", 0
		for k, old := range c.m {
			if !now.Before(old.until) {
				delete(c.m, k)
			} else if victim == "" {
				victim = k
			}
			if seen++; seen == 64 {
				break
			}
		}
		if len(c.m) >= c.max {
			delete(c.m, victim)
		}
	}
	c.m[raw] = e
}

// sameKey reports whether two public keys of a key set are the same key.
func sameKey(a, b any) bool {
	switch x := a.(type) {
	case *rsa.PublicKey:
		y, ok := b.(*rsa.PublicKey)
		return ok && x.Equal(y)
	case ed25519.PublicKey:
		y, ok := b.(ed25519.PublicKey)
		return ok && bytes.Equal(x, y)
	}
	return false
}
