package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// (SPEC.md: the server refuses to start without a strong one).
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
	var claims Claims
	_, err := jwt.ParseWithClaims(raw, &claims,
		func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(tokenLeeway),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Principal{}, errUnauthorized("token expired", err)
	case err != nil:
		return Principal{}, errUnauthorized("invalid token", err)
	case claims.Subject == "":
		return Principal{}, errUnauthorized("invalid token: missing claim sub", nil)
	case claims.OrgID == "":
		return Principal{}, errUnauthorized("invalid token: missing claim org_id", nil)
	case claims.Role == "":
		return Principal{}, errUnauthorized("invalid token: missing claim role", nil)
	case !Role(claims.Role).Valid():
		return Principal{}, errUnauthorized("invalid token: unknown role", nil)
	}
	return Principal{
		UserID:  claims.Subject,
		Email:   claims.Email,
		OrgID:   claims.OrgID,
		Role:    Role(claims.Role),
		TokenID: claims.ID,
	}, nil
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
