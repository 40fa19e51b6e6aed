package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// HeaderAPIKey carries a service account's API key.
const HeaderAPIKey = "X-API-Key"

// API keys look like spk_<16 hex id>_<43 base64url characters>: the id finds
// the key's record, the 256-bit secret is what the stored SHA-256 hash
// checks. A key this random needs no slow hash: nobody can guess it, and a
// leaked hash does not give it back.
const (
	apiKeyPrefix      = "spk_"
	apiKeySecretBytes = 32
	maxAPIKeyNameLen  = 100
	minAPIKeyTTL      = time.Minute
	maxAPIKeyTTL      = 366 * 24 * time.Hour
)

// registerAuthRoutes adds API keys, the token exchange and refresh.
func (s *Server) registerAuthRoutes() {
	s.handle(fiber.MethodPost, "/api/auth/api-keys", PermAPIKeyManage,
		"Issue an API key for a service account (the key is shown once)", s.handleAPIKeyCreate)
	s.handle(fiber.MethodGet, "/api/auth/api-keys", PermAPIKeyManage,
		"List the organisation's API keys (never the keys themselves)", s.handleAPIKeyList)
	s.handle(fiber.MethodDelete, "/api/auth/api-keys/:key_id", PermAPIKeyManage,
		"Revoke an API key and every token family it started", s.handleAPIKeyRevoke)
	s.route(fiber.MethodPost, "/api/auth/token", "",
		"Exchange an API key (X-API-Key) for an access token and a refresh token",
		[]fiber.Handler{s.auditDenials, s.limitAuth, s.throttleAuth}, s.handleTokenExchange)
	s.route(fiber.MethodPost, "/api/auth/refresh", "",
		"Rotate a refresh token: a new access token and refresh token; a reused one revokes its family",
		[]fiber.Handler{s.auditDenials, s.limitAuth, s.throttleAuth}, s.handleTokenRefresh)
}

// newAPIKey returns a fresh key id and the whole key.
func newAPIKey() (id, key string) {
	idb := make([]byte, 8)
	secret := make([]byte, apiKeySecretBytes)
	_, _ = rand.Read(idb) // crypto/rand.Read never fails (Go ≥ 1.24)
	_, _ = rand.Read(secret)
	id = hex.EncodeToString(idb)
	return id, apiKeyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret)
}

// parseAPIKey splits a key into its id, checking its shape.
func parseAPIKey(key string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(key, apiKeyPrefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || !apiKeyIDPattern.MatchString(id) ||
		base64.RawURLEncoding.DecodedLen(len(secret)) != apiKeySecretBytes {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", false
	}
	return id, true
}

// hashSecret is the stored form of an API key or refresh token.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// sameHash compares hashes in constant time.
func sameHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// apiKeyPrincipal is who a request with key k acts as.
func apiKeyPrincipal(k projections.APIKey) Principal {
	return Principal{UserID: "apikey:" + k.ID, OrgID: k.OrgID, Role: Role(k.Role), APIKeyID: k.ID}
}

// verifyAPIKey resolves an X-API-Key to its principal. A key whose record
// exists but which fails (wrong secret, revoked, expired) returns the key's
// organisation with the error, for the audit trail.
func (s *Server) verifyAPIKey(key string) (Principal, error) {
	if s.creds == nil {
		return Principal{}, errUnauthorized("api keys are not enabled on this server", nil)
	}
	id, ok := parseAPIKey(key)
	if !ok {
		return Principal{}, errUnauthorized("invalid api key", nil)
	}
	k, err := s.creds.APIKey(id)
	if err != nil {
		return Principal{}, errUnauthorized("invalid api key", err)
	}
	who := apiKeyPrincipal(k)
	switch {
	case !sameHash(hashSecret(key), k.Hash):
		return who, errUnauthorized("invalid api key", nil)
	case k.RevokedAt != nil:
		return who, errUnauthorized("api key revoked", nil)
	case !k.Active(time.Now()):
		return who, errUnauthorized("api key expired", nil)
	case !who.Role.Valid():
		return who, errUnauthorized("api key has an unknown role", nil)
	}
	return who, nil
}

// apiKeyView is an API key as the API shows it: never its hash. Key is
// set only in the answer that issues it.
type apiKeyView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	OrgID     string     `json:"org_id"`
	Key       string     `json:"key,omitempty"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	Status    string     `json:"status"` // active, expired, revoked
	Position  uint64     `json:"position,omitempty"`
}

func viewAPIKey(k projections.APIKey, now time.Time) apiKeyView {
	v := apiKeyView{ID: k.ID, Name: k.Name, Role: k.Role, OrgID: k.OrgID, Prefix: apiKeyPrefix + k.ID,
		CreatedAt: k.CreatedAt.UTC(), CreatedBy: k.CreatedBy, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt,
		RevokedBy: k.RevokedBy, Status: "active"}
	switch {
	case k.RevokedAt != nil:
		v.Status = "revoked"
	case !k.Active(now):
		v.Status = "expired"
	}
	return v
}

// credentialsOn answers 503 when the server has no event log to write
// credentials to or no read model to check them against.
func (s *Server) credentialsOn() error {
	if s.events == nil || s.creds == nil {
		return &Error{Code: CodeUnavailable, Message: "credentials are not enabled on this server"}
	}
	return nil
}

// handleAPIKeyCreate issues a key: {name, role, ttl?} where ttl is a Go
// duration ("720h") or a number of seconds.
func (s *Server) handleAPIKeyCreate(c *fiber.Ctx) error {
	if err := s.credentialsOn(); err != nil {
		return err
	}
	fields, err := strictObject(c.Body(), false, "name", "role", "ttl")
	if err != nil {
		return err
	}
	var ve process.ValidationError
	name := stringField(fields, &ve, "name", maxAPIKeyNameLen, true)
	role := stringField(fields, &ve, "role", 32, true)
	if role != "" && !Role(role).Valid() {
		ve.Add("role", role, "admin, engineer, operator, viewer", "unknown role")
	}
	ttl := parseTTL(fields["ttl"], &ve)
	if err := ve.Err(); err != nil {
		return err
	}
	p := principal(c)
	id, key := newAPIKey()
	ev := &events.APIKeyIssued{KeyID: id, OrgID: p.OrgID, Name: name, Role: role, Hash: hashSecret(key)}
	now := time.Now().UTC()
	if ttl > 0 {
		ev.ExpiresAt = ptr(now.Add(ttl).Truncate(time.Second))
	}
	res, err := s.appendEvent(c, events.CategoryAPIKey+"-"+id, events.ExpectNoStream, ev)
	if err != nil {
		return err
	}
	s.accepted(c, res.Position)
	v := viewAPIKey(projections.APIKey{ID: id, OrgID: p.OrgID, Name: name, Role: role, CreatedAt: now,
		CreatedBy: p.UserID, ExpiresAt: ev.ExpiresAt}, now)
	v.Key, v.Position = key, res.Position
	c.Location("/api/auth/api-keys/" + id)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(v)
}

// parseTTL reads an optional ttl: a duration string or seconds.
func parseTTL(raw json.RawMessage, ve *process.ValidationError) time.Duration {
	if isNull(raw) {
		return 0
	}
	const allowed = "a duration from 1m to 8784h (\"720h\") or a number of seconds"
	var (
		d   time.Duration
		str string
		sec float64
	)
	switch {
	case json.Unmarshal(raw, &str) == nil:
		var err error
		if d, err = time.ParseDuration(str); err != nil {
			ve.Add("ttl", str, allowed, "ttl is not a duration")
			return 0
		}
	case json.Unmarshal(raw, &sec) == nil && !math.IsNaN(sec) && math.Abs(sec) < maxAPIKeyTTL.Seconds()*2:
		d = time.Duration(sec * float64(time.Second))
	default:
		ve.Add("ttl", rawValue(raw), allowed, "ttl is not a duration")
		return 0
	}
	if d < minAPIKeyTTL || d > maxAPIKeyTTL {
		ve.Add("ttl", d.String(), allowed, "ttl is out of range")
		return 0
	}
	return d
}

// apiKeyList is the organisation's keys.
type apiKeyList struct {
	APIKeys []apiKeyView `json:"api_keys"`
	Total   int          `json:"total"`
}

func (s *Server) handleAPIKeyList(c *fiber.Ctx) error {
	if err := s.credentialsOn(); err != nil {
		return err
	}
	now := time.Now()
	keys := s.creds.APIKeys(principal(c).OrgID)
	out := apiKeyList{APIKeys: make([]apiKeyView, 0, len(keys)), Total: len(keys)}
	for _, k := range keys {
		out.APIKeys = append(out.APIKeys, viewAPIKey(k, now))
	}
	return c.JSON(out)
}

// handleAPIKeyRevoke revokes a key of the caller's organisation; another
// organisation's key is not found. Revoking a revoked key changes nothing.
func (s *Server) handleAPIKeyRevoke(c *fiber.Ctx) error {
	if err := s.credentialsOn(); err != nil {
		return err
	}
	reason, err := optionalReason(c)
	if err != nil {
		return err
	}
	p := principal(c)
	k, err := s.creds.APIKey(c.Params("key_id"))
	if err != nil || k.OrgID != p.OrgID {
		return projections.ErrNotFound
	}
	if k.RevokedAt == nil {
		res, err := s.appendEvent(c, events.CategoryAPIKey+"-"+k.ID, events.ExpectRevision(k.Revision),
			&events.APIKeyRevoked{KeyID: k.ID, Reason: reason})
		if err != nil {
			return err
		}
		// Read-your-writes: once this answers, the key is refused (unless
		// the answer says X-Spectra-Stale).
		s.accepted(c, res.Position)
		k.RevokedAt, k.RevokedBy = ptr(time.Now().UTC()), p.UserID
	}
	return c.JSON(viewAPIKey(k, time.Now()))
}

// appendEvent appends one event of this request, with its metadata.
func (s *Server) appendEvent(c *fiber.Ctx, stream string, exp events.Expected, p events.Payload) (events.AppendResult, error) {
	return s.appendAs(c, s.metadata(c), stream, exp, p)
}

func (s *Server) appendAs(c *fiber.Ctx, md events.Metadata, stream string, exp events.Expected, p events.Payload) (events.AppendResult, error) {
	ev, err := events.New(p, md)
	if err != nil {
		return events.AppendResult{}, err
	}
	res, err := s.events.Append(c.UserContext(), stream, exp, ev)
	if err != nil {
		return res, fmt.Errorf("append %s: %w", stream, err)
	}
	return res, nil
}

func ptr[T any](v T) *T { return &v }
