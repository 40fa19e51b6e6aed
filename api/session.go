package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// Refresh tokens look like sprt_<16 hex family id>_<16 hex token id>_<43
// base64url characters>; the family's stream holds each token's SHA-256.
const (
	refreshPrefix          = "sprt_"
	defaultAccessTokenTTL  = 15 * time.Minute
	defaultRefreshTokenTTL = 24 * time.Hour
)

// tokenResponse answers /api/auth/token and /api/auth/refresh (RFC 6749
// §5.1 names).
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int    `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int    `json:"refresh_expires_in"`
	SessionID        string `json:"session_id"`
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newRefreshToken returns a token id and the whole refresh token of family.
func newRefreshToken(family string) (id, token string) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	id = randomHex(8)
	return id, refreshPrefix + family + "_" + id + "_" + base64.RawURLEncoding.EncodeToString(secret)
}

// parseRefreshToken splits a refresh token into its family and token ids.
func parseRefreshToken(tok string) (family, id string, ok bool) {
	rest, ok := strings.CutPrefix(tok, refreshPrefix)
	if !ok {
		return "", "", false
	}
	parts := strings.SplitN(rest, "_", 3) // the secret's alphabet has "_" too
	if len(parts) != 3 || !apiKeyIDPattern.MatchString(parts[0]) || !apiKeyIDPattern.MatchString(parts[1]) ||
		base64.RawURLEncoding.DecodedLen(len(parts[2])) != 32 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// issueAccessToken signs a short-lived HS256 access token of family sid.
func (s *Server) issueAccessToken(sub, org string, role Role, sid, jti string) (string, error) {
	now := time.Now()
	claims := Claims{OrgID: org, Role: string(role), SessionID: sid,
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, IssuedAt: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTokenTTL)), ID: jti}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(s.cfg.JWTSecret))
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return tok, nil
}

// sessionStream is the stream of a token family.
func sessionStream(family string) string { return events.CategorySession + "-" + family }

// handleTokenExchange trades an API key (X-API-Key, or {"api_key"} in the
// body) for an access token and the first refresh token of a new family.
func (s *Server) handleTokenExchange(c *fiber.Ctx) error {
	if err := s.credentialsOn(); err != nil {
		return err
	}
	fields, err := strictObject(c.Body(), true, "api_key", "refresh_cookie")
	if err != nil {
		return err
	}
	var ve process.ValidationError
	key := stringField(fields, &ve, "api_key", 256, false)
	if raw, ok := fields["refresh_cookie"]; ok {
		var on bool
		if json.Unmarshal(raw, &on) != nil {
			ve.Add("refresh_cookie", rawValue(raw), "true or false", "refresh_cookie must be a boolean")
		} else if on {
			useRefreshCookie(c) // a browser's: the refresh token in an HttpOnly cookie (session_cookie.go)
		}
	}
	if err := ve.Err(); err != nil {
		return err
	}
	if h := c.Get(HeaderAPIKey); h != "" {
		if key != "" {
			return errUnauthorized("send the api key once: in X-API-Key or in the body", nil)
		}
		key = h
	}
	if key == "" {
		return errUnauthorized("missing api key", nil)
	}
	p, err := s.verifyAPIKey(key)
	if err != nil {
		s.deniedAs(c, p)
		return err
	}
	s.setPrincipal(c, p)
	family := randomHex(8)
	tokenID, refresh := newRefreshToken(family)
	jti := uuid.NewString()
	ev := &events.RefreshTokenIssued{FamilyID: family, TokenID: tokenID, Hash: hashSecret(refresh), KeyID: p.APIKeyID,
		Subject: p.UserID, OrgID: p.OrgID, Role: string(p.Role), AccessTokenID: jti,
		ExpiresAt: time.Now().UTC().Add(s.cfg.RefreshTokenTTL).Truncate(time.Second)}
	res, err := s.appendEvent(c, sessionStream(family), events.ExpectNoStream, ev)
	if err != nil {
		return err
	}
	// The access token names its family: verifying it reads the family,
	// so wait until the read model holds it.
	s.accepted(c, res.Position)
	return s.answerTokens(c, p.UserID, p.OrgID, p.Role, family, jti, refresh)
}

func (s *Server) answerTokens(c *fiber.Ctx, sub, org string, role Role, family, jti, refresh string) error {
	access, err := s.issueAccessToken(sub, org, role, family, jti)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	tr := tokenResponse{AccessToken: access, TokenType: "Bearer",
		ExpiresIn: int(s.cfg.AccessTokenTTL / time.Second), RefreshToken: refresh,
		RefreshExpiresIn: int(s.cfg.RefreshTokenTTL / time.Second), SessionID: family}
	s.deliverRefresh(c, &tr)
	return c.JSON(tr)
}

// errRefreshRefused is the one answer to every bad refresh token, so that
// the answer tells an attacker nothing about which check failed.
func errRefreshRefused(cause error) error {
	return errUnauthorized("invalid refresh token", cause)
}

// handleTokenRefresh spends the family's current refresh token for a new
// access token and refresh token. Presenting a spent one again means it
// leaked: the whole family is revoked, its access tokens with it.
func (s *Server) handleTokenRefresh(c *fiber.Ctx) error {
	if err := s.credentialsOn(); err != nil {
		return err
	}
	fields, err := strictObject(c.Body(), true, "refresh_token")
	if err != nil {
		return err
	}
	var ve process.ValidationError
	var tok string
	if _, inBody := fields["refresh_token"]; !inBody {
		tok = refreshFromCookie(c) // a browser's (session_cookie.go)
	}
	if tok == "" {
		tok = stringField(fields, &ve, "refresh_token", 256, true)
	}
	if err := ve.Err(); err != nil {
		return err
	}
	famID, tokenID, ok := parseRefreshToken(tok)
	if !ok {
		return errRefreshRefused(errors.New("malformed"))
	}
	f, err := s.creds.Family(famID)
	if err != nil {
		return errRefreshRefused(err)
	}
	who := Principal{UserID: f.Subject, OrgID: f.OrgID, Role: Role(f.Role), SessionID: f.ID}
	rt, known := f.Tokens[tokenID]
	if !known || !sameHash(hashSecret(tok), rt.Hash) {
		s.deniedAs(c, who)
		return errRefreshRefused(errors.New("unknown token or wrong secret"))
	}
	s.setPrincipal(c, who)
	switch {
	case f.Revoked:
		s.deniedAs(c, who)
		return errRefreshRefused(errors.New("family revoked: " + f.Reason))
	case rt.Spent || tokenID != f.Current:
		return s.revokeFamily(c, f, tokenID, "refresh token reused")
	case time.Now().After(rt.ExpiresAt):
		s.deniedAs(c, who)
		return errRefreshRefused(errors.New("expired"))
	}
	if k, err := s.creds.APIKey(f.KeyID); err != nil || !k.Active(time.Now()) {
		s.deniedAs(c, who)
		return errRefreshRefused(fmt.Errorf("api key %s no longer active", f.KeyID))
	}
	newID, refresh := newRefreshToken(f.ID)
	jti := uuid.NewString()
	res, err := s.appendEvent(c, sessionStream(f.ID), events.ExpectRevision(f.Revision), &events.RefreshTokenRotated{
		FamilyID: f.ID, FromTokenID: tokenID, TokenID: newID, Hash: hashSecret(refresh), AccessTokenID: jti,
		ExpiresAt: time.Now().UTC().Add(s.cfg.RefreshTokenTTL).Truncate(time.Second)})
	if errors.Is(err, events.ErrConflict) {
		// Another request spent this token first: a reuse.
		return s.revokeFamily(c, f, tokenID, "refresh token used twice concurrently")
	}
	if err != nil {
		return err
	}
	s.accepted(c, res.Position)
	return s.answerTokens(c, f.Subject, f.OrgID, Role(f.Role), f.ID, jti, refresh)
}

// revokeFamily records that family f is revoked because token tokenID was
// presented again, and refuses the request.
func (s *Server) revokeFamily(c *fiber.Ctx, f projections.TokenFamily, tokenID, reason string) error {
	who := Principal{UserID: f.Subject, OrgID: f.OrgID, Role: Role(f.Role), SessionID: f.ID}
	s.deniedAs(c, who)
	md := s.metadata(c)
	res, err := s.appendAs(c, md, sessionStream(f.ID), events.ExpectAny,
		&events.TokenFamilyRevoked{FamilyID: f.ID, Reason: reason, TokenID: tokenID})
	if err != nil {
		return err
	}
	s.accepted(c, res.Position)
	return errRefreshRefused(errors.New(reason + "; family " + f.ID + " revoked"))
}

// verifySession refuses an access token whose family or API key has been
// revoked, or whose jti is revoked.
func (s *Server) verifySession(p Principal) error {
	if p.SessionID == "" && p.TokenID == "" {
		return nil
	}
	if s.creds == nil {
		if p.SessionID != "" {
			return errUnauthorized("session tokens are not enabled on this server", nil)
		}
		return nil
	}
	if p.TokenID != "" && s.creds.AccessTokenRevoked(p.TokenID) {
		return errUnauthorized("token revoked", nil)
	}
	if p.SessionID == "" {
		return nil
	}
	f, err := s.creds.Family(p.SessionID)
	switch {
	case err != nil:
		return errUnauthorized("token revoked", err)
	case f.Revoked:
		return errUnauthorized("token revoked", nil)
	case f.OrgID != p.OrgID:
		return errUnauthorized("invalid token", nil)
	}
	if k, err := s.creds.APIKey(f.KeyID); err != nil || !k.Active(time.Now()) {
		return errUnauthorized("token revoked", err)
	}
	return nil
}
