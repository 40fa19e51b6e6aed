package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Secret is key material. It never prints or logs: fmt and slog show
// "[REDACTED]".
type Secret []byte

// LogValue hides the secret from slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// String hides the secret from fmt's %s and %v.
func (Secret) String() string { return "[REDACTED]" }

// GoString hides the secret from fmt's %#v.
func (Secret) GoString() string { return "[REDACTED]" }

// MinSecretLen is the shortest JWT secret a server accepts outside dev mode
// (the specification: the server refuses to start without a strong one).
const MinSecretLen = 32

// CheckSecret reports whether secret is strong enough to sign tokens
// outside dev mode.
func CheckSecret(secret []byte) error {
	if len(secret) < MinSecretLen {
		return fmt.Errorf("jwt secret: %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	return nil
}

// tokenLeeway is the clock skew tolerated on exp, nbf and iat.
const tokenLeeway = 30 * time.Second

// Claims are the claims of a Spectra access token: sub (user id), email,
// org_id, role, exp, iat, jti. sub, org_id, role and exp are required.
type Claims struct {
	Email string `json:"email,omitempty"`
	OrgID string `json:"org_id"`
	Role  string `json:"role"`
	// SessionID names the token family of a token issued by /api/auth/token
	// or /api/auth/refresh; it dies with its family.
	SessionID string `json:"sid,omitempty"`
	jwt.RegisteredClaims
}

// IssueToken returns an HS256 access token for user sub of organisation
// orgID with the given role, valid for ttl. It is what `spectra token`
// prints; the server accepts any HS256 token with these claims signed with
// the same secret.
func IssueToken(secret []byte, sub, email, orgID, role string, ttl time.Duration) (string, error) {
	switch {
	case len(secret) == 0:
		return "", errors.New("issue token: empty secret")
	case sub == "":
		return "", errors.New("issue token: empty subject")
	case orgID == "":
		return "", errors.New("issue token: empty org id")
	case !validOrgID(orgID):
		return "", fmt.Errorf("issue token: malformed org id %q (want 1–64 letters, digits, '-' or '_')", orgID)
	case !Role(role).Valid():
		return "", fmt.Errorf("issue token: unknown role %q", role)
	case ttl <= 0:
		return "", fmt.Errorf("issue token: ttl %v is not positive", ttl)
	}
	now := time.Now()
	claims := Claims{
		Email: email,
		OrgID: orgID,
		Role:  role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        uuid.NewString(),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return tok, nil
}

// parseToken verifies an HS256 token and returns its principal. The
// algorithm is pinned: "none", RS256 and every other alg are refused.
func parseToken(secret []byte, raw string) (Principal, error) {
	return verifier{secret: secret}.verify(raw)
}

// maxTokenLen caps the size of a token the server will parse.
const maxTokenLen = 8 << 10

// verifier checks access tokens: HS256 with the shared secret always (the
// tokens `spectra token` prints and /api/auth/token issues), and RS256 or
// EdDSA with the public keys of a JWKS when one is configured (tokens of an
// identity provider). Each algorithm is tied to its key type, so an RSA
// public key can never be used as an HMAC secret.
type verifier struct {
	secret []byte
	jwks   *JWKS
	// issuer and audience, when set, must be the iss and one of the aud of
	// an identity provider's tokens (RS256/EdDSA); HS256 tokens are this
	// server's own.
	issuer, audience string
	// maxLifetime caps exp − iat (exp − now without iat).
	maxLifetime time.Duration
	// cache, when set, remembers verified tokens (see tokenCache).
	cache *tokenCache
}

// defaultMaxTokenLifetime is the longest access token accepted: a day,
// what `spectra token` issues by default.
const defaultMaxTokenLifetime = 24 * time.Hour

func (v verifier) methods() []string {
	if v.jwks == nil {
		return []string{jwt.SigningMethodHS256.Alg()}
	}
	return []string{jwt.SigningMethodHS256.Alg(), jwt.SigningMethodRS256.Alg(), jwt.SigningMethodEdDSA.Alg()}
}

func (v verifier) key(t *jwt.Token) (any, error) {
	switch alg := t.Method.Alg(); alg {
	case jwt.SigningMethodHS256.Alg():
		return v.secret, nil
	case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodEdDSA.Alg():
		if v.jwks == nil {
			return nil, fmt.Errorf("alg %s: no key set configured", alg)
		}
		kid, _ := t.Header["kid"].(string)
		return v.jwks.key(kid, alg)
	default:
		return nil, fmt.Errorf("alg %s not accepted", alg)
	}
}

// verify checks a token's signature and claims and returns its principal.
// When the signature is good but a claim is not (expired, not yet valid),
// the principal it claims is returned with the error, so that the refusal
// can be audited in its organisation.
func (v verifier) verify(raw string) (Principal, error) {
	if len(raw) > maxTokenLen {
		return Principal{}, errUnauthorized("invalid token", errors.New("token too long"))
	}
	if v.cache != nil {
		if p, ok := v.cache.get(v, raw); ok {
			return p, nil
		}
	}
	var (
		claims Claims
		used   cachedToken // what verified it: the cache's entry
	)
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		k, err := v.key(t)
		if alg := t.Method.Alg(); err == nil && alg != jwt.SigningMethodHS256.Alg() {
			used.kid, _ = t.Header["kid"].(string)
			used.alg, used.key = alg, k
		}
		return k, err
	},
		jwt.WithValidMethods(v.methods()),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(tokenLeeway),
	)
	p := Principal{
		UserID:    claims.Subject,
		Email:     claims.Email,
		OrgID:     claims.OrgID,
		Role:      Role(claims.Role),
		TokenID:   claims.ID,
		SessionID: claims.SessionID,
	}
	// The claims were only checked after the signature: on these errors
	// they are the issuer's.
	signed := errors.Is(err, jwt.ErrTokenExpired) || errors.Is(err, jwt.ErrTokenNotValidYet) ||
		errors.Is(err, jwt.ErrTokenUsedBeforeIssued)
	switch {
	case signed && validOrgID(claims.OrgID):
		if errors.Is(err, jwt.ErrTokenExpired) {
			return p, errUnauthorized("token expired", err)
		}
		return p, errUnauthorized("token not valid yet", err)
	case err != nil:
		return Principal{}, errUnauthorized("invalid token", err)
	case claims.Subject == "":
		return Principal{}, errUnauthorized("invalid token: missing claim sub", nil)
	case claims.OrgID == "":
		return Principal{}, errUnauthorized("invalid token: missing claim org_id", nil)
	case !validOrgID(claims.OrgID):
		return Principal{}, errUnauthorized("invalid token: malformed claim org_id", nil)
	case claims.Role == "":
		return Principal{}, errUnauthorized("invalid token: missing claim role", nil)
	case !Role(claims.Role).Valid():
		return p, errUnauthorized("invalid token: unknown role", nil)
	}
	if err := v.checkClaims(raw, claims); err != nil {
		return Principal{}, err
	}
	if v.cache != nil {
		used.p, used.until = p, claims.ExpiresAt.Add(tokenLeeway) // exp is required
		v.cache.put(raw, used)
	}
	return p, nil
}

// checkClaims applies what the JWT library leaves to us: time claims that
// are JSON numbers (it also accepts numeric strings), a bounded lifetime,
// and the issuer and audience of an identity provider's tokens.
func (v verifier) checkClaims(raw string, claims Claims) error {
	parts := strings.Split(raw, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return errUnauthorized("invalid token", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return errUnauthorized("invalid token", err)
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		if f, ok := fields[name]; ok && (len(f) == 0 || f[0] < '0' || f[0] > '9') {
			return errUnauthorized("invalid token: claim "+name+" must be a number", nil)
		}
	}
	maxLife := v.maxLifetime
	if maxLife <= 0 {
		maxLife = defaultMaxTokenLifetime
	}
	from := time.Now()
	if claims.IssuedAt != nil {
		from = claims.IssuedAt.Time
	}
	if claims.ExpiresAt.Sub(from) > maxLife+tokenLeeway {
		return errUnauthorized("invalid token: lifetime over "+maxLife.String(), nil)
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return errUnauthorized("invalid token", err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		return errUnauthorized("invalid token", err)
	}
	if h.Alg == jwt.SigningMethodHS256.Alg() {
		return nil
	}
	if v.issuer != "" && claims.Issuer != v.issuer {
		return errUnauthorized("invalid token: wrong issuer", nil)
	}
	if v.audience != "" && !slices.Contains(claims.Audience, v.audience) {
		return errUnauthorized("invalid token: wrong audience", nil)
	}
	return nil
}

// validOrgID accepts organisation ids that can name an event stream
// (audit-<org>): 1 to 64 letters, digits, '-' and '_'.
func validOrgID(org string) bool {
	if org == "" || len(org) > 64 {
		return false
	}
	for _, r := range org {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive.
func bearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// Principal is who makes a request: a user of one organisation with one
// role.
type Principal struct {
	UserID  string
	Email   string
	OrgID   string
	Role    Role
	TokenID string // the token's jti, when it has one
	// SessionID is the token family of a refreshed token ("" otherwise).
	SessionID string
	// APIKeyID is the key a request authenticated with ("" for tokens).
	APIKeyID string
}

// LogValue logs who the principal is, without the email (personal data).
func (p Principal) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user_id", p.UserID), slog.String("org_id", p.OrgID),
		slog.String("role", string(p.Role)))
}

type contextKey int

const (
	principalKey contextKey = iota
	requestIDKey
)

// NewContextWithPrincipal returns a copy of ctx carrying p.
func NewContextWithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// PrincipalFromContext returns the principal in ctx, if any.
func PrincipalFromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey).(Principal)
	return p, ok
}

// NewContextWithRequestID returns a copy of ctx carrying the request id.
func NewContextWithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestIDFromContext returns the request id in ctx, or "".
func RequestIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}
