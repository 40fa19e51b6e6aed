package api

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/events"
)

// A browser keeps its refresh token where page scripts cannot read it: in
// an HttpOnly cookie (Secure over TLS, SameSite=Strict) sent only to the
// refresh path. The exchange asks for it with "refresh_cookie": true; a
// refresh without a refresh_token in its body spends the cookie's and
// answers with a new cookie; DELETE on the refresh path signs out (the
// family is revoked, the cookie cleared). Clients that hold their refresh
// token themselves (the CLI, services) are unchanged: it comes and goes in
// the JSON bodies.
const (
	refreshCookieName = "spectra_refresh"
	refreshCookiePath = "/api/auth/refresh"
	localCookieMode   = "refresh_cookie"
)

func init() {
	successes["DELETE /api/auth/refresh"] = success{status: 204}
}

// registerSessionCookieRoutes adds the browser's sign-out.
func (s *Server) registerSessionCookieRoutes() {
	s.route(fiber.MethodDelete, refreshCookiePath, "",
		"Sign a browser out: revoke the token family of its refresh cookie and clear the cookie",
		[]fiber.Handler{s.auditDenials, s.limitAuth, s.throttleAuth}, s.handleSignOut)
}

// useRefreshCookie marks the request's answer as the browser's: the
// refresh token goes into the cookie, not the body.
func useRefreshCookie(c *fiber.Ctx) { c.Locals(localCookieMode, true) }

// deliverRefresh sets the refresh cookie and blanks the body's token when
// the request asked for the cookie.
func (s *Server) deliverRefresh(c *fiber.Ctx, tr *tokenResponse) {
	if on, _ := c.Locals(localCookieMode).(bool); !on {
		return
	}
	c.Cookie(&fiber.Cookie{Name: refreshCookieName, Value: tr.RefreshToken, Path: refreshCookiePath,
		MaxAge: tr.RefreshExpiresIn, Expires: time.Now().Add(time.Duration(tr.RefreshExpiresIn) * time.Second),
		HTTPOnly: true, Secure: c.Secure(), SameSite: fiber.CookieSameSiteStrictMode})
	tr.RefreshToken = ""
}

// refreshFromCookie returns the cookie's refresh token ("" without one) and
// marks the answer as the browser's.
func refreshFromCookie(c *fiber.Ctx) string {
	tok := c.Cookies(refreshCookieName)
	if tok != "" {
		useRefreshCookie(c)
	}
	return tok
}

func clearRefreshCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{Name: refreshCookieName, Value: "", Path: refreshCookiePath, MaxAge: -1,
		Expires: time.Unix(0, 0), HTTPOnly: true, Secure: c.Secure(), SameSite: fiber.CookieSameSiteStrictMode})
}

// handleSignOut revokes the family of the cookie's refresh token (any
// token the family issued: a stale tab signs out too) and clears the
// cookie. Without a cookie, or with one the server does not know, it
// only clears it.
func (s *Server) handleSignOut(c *fiber.Ctx) error {
	if err := s.credentialsOn(); err != nil {
		return err
	}
	tok := c.Cookies(refreshCookieName)
	clearRefreshCookie(c)
	c.Set(fiber.HeaderCacheControl, "no-store")
	famID, tokenID, ok := parseRefreshToken(tok)
	if !ok {
		return c.SendStatus(fiber.StatusNoContent)
	}
	f, err := s.creds.Family(famID)
	if err != nil {
		return c.SendStatus(fiber.StatusNoContent)
	}
	rt, known := f.Tokens[tokenID]
	if !known || !sameHash(hashSecret(tok), rt.Hash) || f.Revoked {
		return c.SendStatus(fiber.StatusNoContent)
	}
	who := Principal{UserID: f.Subject, OrgID: f.OrgID, Role: Role(f.Role), SessionID: f.ID}
	s.setPrincipal(c, who)
	res, err := s.appendAs(c, s.metadata(c), sessionStream(f.ID), events.ExpectAny,
		&events.TokenFamilyRevoked{FamilyID: f.ID, Reason: "signed out", TokenID: tokenID})
	if err != nil && !errors.Is(err, events.ErrConflict) {
		return err
	}
	s.accepted(c, res.Position)
	return c.SendStatus(fiber.StatusNoContent)
}
