package api

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// refreshCookie returns the refresh cookie a response sets (nil: none).
func refreshCookie(res response) *http.Cookie {
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		if c.Name == refreshCookieName {
			return c
		}
	}
	return nil
}

// A browser's refresh token lives in an HttpOnly, SameSite=Strict cookie
// scoped to the refresh path (Secure over TLS), never in a body; refresh
// rotates it, sign-out revokes its family and clears it. The body flow of
// CLI clients is unchanged beside it.
func TestRefreshTokenInHttpOnlyCookie(t *testing.T) {
	st := newSecStack(t, func(c *Config) { c.AccessTokenTTL = time.Minute })
	_, key := st.issueKey(t, "org-1", RoleOperator)

	first, res := st.exchange(t, "/api/auth/token", `{"api_key":"`+key+`","refresh_cookie":true}`)
	ck := refreshCookie(res)
	if res.Status != http.StatusOK || first.Access == "" || first.Refresh != "" || strings.Contains(string(res.Body), refreshPrefix) {
		t.Fatalf("exchange for a cookie = %d %s, want an access token and no refresh token in the body", res.Status, res.Body)
	}
	if ck == nil || !strings.HasPrefix(ck.Value, refreshPrefix) || !ck.HttpOnly || ck.Secure || ck.Path != "/api/auth/refresh" ||
		ck.SameSite != http.SameSiteStrictMode || ck.MaxAge <= 0 {
		t.Fatalf("Set-Cookie = %+v (%q), want HttpOnly, SameSite=Strict, Path=/api/auth/refresh, not Secure over plain HTTP", ck, res.Header.Values("Set-Cookie"))
	}

	// Refresh by the cookie alone: a new cookie, a working access token.
	second, res := st.exchange(t, "/api/auth/refresh", "", "Cookie", refreshCookieName+"="+ck.Value)
	ck2 := refreshCookie(res)
	if res.Status != http.StatusOK || second.Refresh != "" || ck2 == nil || ck2.Value == ck.Value || !ck2.HttpOnly {
		t.Fatalf("refresh by cookie = %d %s, cookie %+v: want 200, a new cookie, no token in the body", res.Status, res.Body, ck2)
	}
	if res := st.do(t, http.MethodGet, "/api/jobs", "", bearer(second.Access)...); res.Status != http.StatusOK {
		t.Fatalf("GET with the refreshed access token = %d", res.Status)
	}

	// Over TLS (here: behind a proxy saying so) the cookie is Secure.
	_, res = st.exchange(t, "/api/auth/refresh", "", "Cookie", refreshCookieName+"="+ck2.Value, "X-Forwarded-Proto", "https")
	ck3 := refreshCookie(res)
	if res.Status != http.StatusOK || ck3 == nil || !ck3.Secure {
		t.Fatalf("refresh over https = %d, cookie %+v: want Secure", res.Status, ck3)
	}

	// Sign-out revokes the family and clears the cookie.
	res = st.do(t, http.MethodDelete, "/api/auth/refresh", "", "Cookie", refreshCookieName+"="+ck3.Value)
	if cl := refreshCookie(res); res.Status != http.StatusNoContent || cl == nil || cl.Value != "" || (cl.MaxAge >= 0 && !cl.Expires.Before(time.Now())) {
		t.Fatalf("sign-out = %d, cookie %+v: want 204 and the cookie cleared", res.Status, cl)
	}
	if res := st.do(t, http.MethodGet, "/api/jobs", "", bearer(second.Access)...); res.Status != http.StatusUnauthorized {
		t.Errorf("access token after sign-out = %d, want 401", res.Status)
	}
	if _, res := st.exchange(t, "/api/auth/refresh", "", "Cookie", refreshCookieName+"="+ck3.Value); res.Status != http.StatusUnauthorized {
		t.Errorf("refresh after sign-out = %d, want 401", res.Status)
	}
	entries := st.auditEntries(t, "org-1", "type=token_family_revoked", st.head(t))
	if len(entries) != 1 || entries[0].Details["reason"] != "signed out" {
		t.Errorf("token_family_revoked entries = %+v, want one for the sign-out", entries)
	}
	// Signing out without a cookie, or with a forged one, only clears it.
	for _, cookie := range []string{"", refreshCookieName + "=sprt_0011223344556677_8899aabbccddeeff_forged"} {
		if res := st.do(t, http.MethodDelete, "/api/auth/refresh", "", "Cookie", cookie); res.Status != http.StatusNoContent {
			t.Errorf("sign-out with cookie %q = %d, want 204", cookie, res.Status)
		}
	}

	// The CLI's flow: the token in the bodies, no cookie.
	cli, res := st.exchange(t, "/api/auth/token", "", HeaderAPIKey, key)
	if res.Status != http.StatusOK || !strings.HasPrefix(cli.Refresh, refreshPrefix) || refreshCookie(res) != nil {
		t.Fatalf("CLI exchange = %d %s, set-cookie %q: want the refresh token in the body and no cookie", res.Status, res.Body, res.Header.Values("Set-Cookie"))
	}
	next, res := st.exchange(t, "/api/auth/refresh", `{"refresh_token":"`+cli.Refresh+`"}`)
	if res.Status != http.StatusOK || !strings.HasPrefix(next.Refresh, refreshPrefix) || next.Refresh == cli.Refresh || refreshCookie(res) != nil {
		t.Fatalf("CLI refresh = %d %s: want a new refresh token in the body and no cookie", res.Status, res.Body)
	}
	if _, res := st.exchange(t, "/api/auth/refresh", ""); res.Status != http.StatusUnprocessableEntity {
		t.Errorf("refresh with neither body nor cookie = %d, want 422", res.Status)
	}
	if _, res := st.exchange(t, "/api/auth/token", `{"api_key":"`+key+`","refresh_cookie":"yes"}`); res.Status != http.StatusUnprocessableEntity {
		t.Errorf("refresh_cookie not a boolean = %d, want 422", res.Status)
	}
}
