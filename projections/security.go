package projections

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/spectra-fab/spectra/events"
)

// APIKey is an API key as the security read model holds it: its hash,
// never the key.
type APIKey struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Hash      string     `json:"hash"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	// Revision is the last revision of the key's stream.
	Revision uint64 `json:"revision"`
}

// Active reports whether the key authenticates at time now.
func (k APIKey) Active(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// RefreshToken is one refresh token of a family, by its hash.
type RefreshToken struct {
	Hash      string    `json:"hash"`
	ExpiresAt time.Time `json:"expires_at"`
	Spent     bool      `json:"spent"`
}

// TokenFamily is a chain of rotated refresh tokens started by one API key
// exchange, with the access tokens issued along it.
type TokenFamily struct {
	ID        string                  `json:"id"`
	OrgID     string                  `json:"org_id"`
	KeyID     string                  `json:"key_id"`
	Subject   string                  `json:"sub"`
	Role      string                  `json:"role"`
	CreatedAt time.Time               `json:"created_at"`
	Current   string                  `json:"current"` // id of the refresh token that may be spent next
	Tokens    map[string]RefreshToken `json:"tokens"`
	Access    []string                `json:"access"` // jti of every access token issued in the family
	Revoked   bool                    `json:"revoked"`
	Reason    string                  `json:"reason,omitempty"`
	// Revision is the last revision of the family's stream: the expected
	// revision of the next rotation.
	Revision uint64 `json:"revision"`
}

// Security is the read model of credentials: API keys (by hash) and
// refresh-token families, per organisation. The API verifies X-API-Key,
// refresh tokens and revoked access tokens against it.
type Security struct {
	mu       sync.RWMutex
	keys     map[string]*APIKey
	families map[string]*TokenFamily
	revoked  map[string]bool // access-token jti → revoked
}

var _ Projection = (*Security)(nil)

// NewSecurity returns an empty security model.
func NewSecurity() *Security {
	s := &Security{}
	s.Reset()
	return s
}

// Name implements Projection.
func (s *Security) Name() string { return "security" }

// Reset implements Projection.
func (s *Security) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys, s.families, s.revoked = map[string]*APIKey{}, map[string]*TokenFamily{}, map[string]bool{}
}

type securitySnapshot struct {
	Keys     []*APIKey      `json:"keys"`
	Families []*TokenFamily `json:"families"`
}

// Snapshot implements Projection.
func (s *Security) Snapshot() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap := securitySnapshot{}
	for _, id := range slices.Sorted(maps.Keys(s.keys)) {
		snap.Keys = append(snap.Keys, s.keys[id])
	}
	for _, id := range slices.Sorted(maps.Keys(s.families)) {
		snap.Families = append(snap.Families, s.families[id])
	}
	return json.Marshal(snap)
}

// Restore implements Projection.
func (s *Security) Restore(data []byte) error {
	var snap securitySnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("restore security: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys, s.families, s.revoked = map[string]*APIKey{}, map[string]*TokenFamily{}, map[string]bool{}
	for _, k := range snap.Keys {
		s.keys[k.ID] = k
	}
	for _, f := range snap.Families {
		if f.Tokens == nil {
			f.Tokens = map[string]RefreshToken{}
		}
		s.families[f.ID] = f
		if f.Revoked {
			for _, jti := range f.Access {
				s.revoked[jti] = true
			}
		}
	}
	return nil
}

// Wants implements Selective: every record of API-key and session
// streams.
func (s *Security) Wants(category, _ string) bool {
	return category == events.CategoryAPIKey || category == events.CategorySession
}

// Apply implements Projection.
func (s *Security) Apply(rec events.Record) error {
	if !s.Wants(events.Category(rec.Stream), "") {
		return nil
	}
	p, err := events.Decode(rec)
	if err != nil {
		return nil //nolint:nilerr // types this model does not know are skipped
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := p.(type) {
	case *events.APIKeyIssued:
		if _, dup := s.keys[e.KeyID]; dup {
			return nil
		}
		org := e.OrgID
		if org == "" {
			org = rec.Metadata.OrgID
		}
		s.keys[e.KeyID] = &APIKey{ID: e.KeyID, OrgID: org, Name: e.Name, Role: e.Role, Hash: e.Hash,
			CreatedAt: rec.Time, CreatedBy: rec.Metadata.UserID, ExpiresAt: e.ExpiresAt, Revision: rec.Revision}
	case *events.APIKeyRevoked:
		k, ok := s.keys[e.KeyID]
		if !ok {
			return nil
		}
		k.Revision = rec.Revision
		if k.RevokedAt == nil {
			k.RevokedAt, k.RevokedBy = ptr(rec.Time), rec.Metadata.UserID
		}
		// A revoked key's families end with it.
		for _, f := range s.families {
			if f.KeyID == k.ID {
				s.revokeFamily(f, "api key revoked")
			}
		}
	case *events.RefreshTokenIssued:
		if _, dup := s.families[e.FamilyID]; dup {
			return nil
		}
		f := &TokenFamily{ID: e.FamilyID, OrgID: e.OrgID, KeyID: e.KeyID, Subject: e.Subject, Role: e.Role,
			CreatedAt: rec.Time, Current: e.TokenID, Access: []string{e.AccessTokenID}, Revision: rec.Revision,
			Tokens: map[string]RefreshToken{e.TokenID: {Hash: e.Hash, ExpiresAt: e.ExpiresAt}}}
		if f.OrgID == "" {
			f.OrgID = rec.Metadata.OrgID
		}
		s.families[f.ID] = f
		if k, ok := s.keys[f.KeyID]; ok && k.RevokedAt != nil {
			s.revokeFamily(f, "api key revoked")
		}
	case *events.RefreshTokenRotated:
		f, ok := s.families[e.FamilyID]
		if !ok {
			return nil
		}
		f.Revision = rec.Revision
		if old, ok := f.Tokens[e.FromTokenID]; ok {
			old.Spent = true
			f.Tokens[e.FromTokenID] = old
		}
		f.Tokens[e.TokenID] = RefreshToken{Hash: e.Hash, ExpiresAt: e.ExpiresAt}
		f.Current = e.TokenID
		f.Access = append(f.Access, e.AccessTokenID)
		if f.Revoked {
			s.revoked[e.AccessTokenID] = true
		}
	case *events.TokenFamilyRevoked:
		f, ok := s.families[e.FamilyID]
		if !ok {
			return nil
		}
		f.Revision = rec.Revision
		s.revokeFamily(f, e.Reason)
	}
	return nil
}

func (s *Security) revokeFamily(f *TokenFamily, reason string) {
	if !f.Revoked {
		f.Revoked, f.Reason = true, reason
	}
	for _, jti := range f.Access {
		s.revoked[jti] = true
	}
}

// APIKey returns the key with id, or ErrNotFound.
func (s *Security) APIKey(id string) (APIKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[id]
	if !ok {
		return APIKey{}, ErrNotFound
	}
	return *k, nil
}

// APIKeys returns the keys of organisation orgID, oldest first.
func (s *Security) APIKeys(orgID string) []APIKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []APIKey
	for _, k := range s.keys {
		if k.OrgID == orgID {
			out = append(out, *k)
		}
	}
	slices.SortFunc(out, func(a, b APIKey) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Family returns the token family with id, or ErrNotFound.
func (s *Security) Family(id string) (TokenFamily, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.families[id]
	if !ok {
		return TokenFamily{}, ErrNotFound
	}
	c := *f
	c.Tokens = maps.Clone(f.Tokens)
	c.Access = slices.Clone(f.Access)
	return c, nil
}

// AccessTokenRevoked reports whether the access token with id jti was
// issued in a family that has since been revoked.
func (s *Security) AccessTokenRevoked(jti string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.revoked[jti]
}
