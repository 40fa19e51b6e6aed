package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/fab"
	"github.com/spectra-fab/spectra/process"
)

// Error codes of the JSON error body. They are part of the API contract:
// clients branch on them, so they never change meaning.
const (
	CodeBadRequest       = "bad_request"        // 400: a request the server cannot parse at all
	CodeUnauthorized     = "unauthorized"       // 401: no, bad or expired credentials
	CodeForbidden        = "forbidden"          // 403: authenticated, but the role lacks the permission
	CodeNotFound         = "not_found"          // 404: no such route, run or job (or another organisation's)
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: the command does not apply to the run's state
	CodePayloadTooLarge  = "payload_too_large"  // 413: the body is over the configured limit
	CodeValidation       = "validation_failed"  // 422: invalid input, with the offending fields
	CodeRateLimited      = "rate_limited"       // 429
	CodeInternal         = "internal"           // 500: the real error is logged, never shown
	CodeUnavailable      = "unavailable"        // 503: shutting down, overloaded, not ready
	CodeTimeout          = "timeout"            // 504: a dependency did not answer in time
)

// codeStatus maps each error code to its HTTP status. It is the only map
// from our errors to HTTP statuses.
var codeStatus = map[string]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeForbidden:        http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeConflict:         http.StatusConflict,
	CodePayloadTooLarge:  http.StatusRequestEntityTooLarge,
	CodeValidation:       http.StatusUnprocessableEntity,
	CodeRateLimited:      http.StatusTooManyRequests,
	CodeInternal:         http.StatusInternalServerError,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeTimeout:          http.StatusGatewayTimeout,
}

// Error is an error the API raises itself, with a stable code and a message
// that is safe to show the client. Err, when set, is the cause; it is logged,
// never shown.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorBody is the JSON body of every error response:
//
//	{"error":{"code":"validation_failed","message":"...","fields":[...],"request_id":"..."}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the content of an ErrorBody.
type ErrorDetail struct {
	Code      string               `json:"code"`
	Message   string               `json:"message"`
	Fields    []process.FieldError `json:"fields,omitempty"`
	RequestID string               `json:"request_id"`
	// IdempotencyKey, on a create that failed with 5xx, is the key a
	// retry (Idempotency-Key header) finds the run by, if it was recorded.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Check, on a command that failed with 5xx (a timeout above all), is
	// the resource to read before repeating it: the command may still
	// take effect.
	Check string `json:"check,omitempty"`
}

// classify turns any error into what the client sees. It is the one place
// that maps errors to HTTP: API errors by code, the actor layer's and the
// projections' sentinels with errors.Is, recipe validation with errors.As.
func classify(err error) (status int, d ErrorDetail) {
	var (
		apiErr   *Error
		valErr   *process.ValidationError
		stateErr *actors.StateError
		fibErr   *fiber.Error
		ruleErr  *fab.RuleError
	)
	switch {
	case errors.As(err, &apiErr):
		d = ErrorDetail{Code: apiErr.Code, Message: apiErr.Message}
		// An API error may carry field errors (bad query parameters).
		if errors.As(apiErr.Err, &valErr) {
			d.Fields = valErr.Fields
		}
	case errors.As(err, &valErr):
		d = ErrorDetail{Code: CodeValidation, Message: validationMessage(valErr), Fields: valErr.Fields}
	case errors.Is(err, actors.ErrFaultInjectionDisabled):
		d = ErrorDetail{Code: CodeValidation, Message: "fault injection is disabled on this server",
			Fields: []process.FieldError{{Field: "simulate_fault", Allowed: "absent (fault injection is disabled)",
				Message: "fault injection is disabled on this server"}}}
	case errors.As(err, &stateErr):
		msg := stateErr.Reason
		if stateErr.State != "" {
			msg += " (status " + string(stateErr.State) + ")"
		}
		d = ErrorDetail{Code: CodeConflict, Message: msg}
	case errors.As(err, &ruleErr):
		d = ErrorDetail{Code: CodeConflict, Message: ruleErr.Reason}
	case errors.Is(err, actors.ErrInvalidState):
		d = ErrorDetail{Code: CodeConflict, Message: "the command does not apply to the run's current state"}
	case errors.Is(err, events.ErrNotFound):
		d = ErrorDetail{Code: CodeNotFound, Message: "not found"}
	case errors.Is(err, actors.ErrUnavailable):
		d = ErrorDetail{Code: CodeUnavailable, Message: "service unavailable, try again later"}
	case errors.Is(err, events.ErrUnavailable):
		d = ErrorDetail{Code: CodeUnavailable, Message: "the event store is unreachable; retry later"}
	case errors.Is(err, context.DeadlineExceeded):
		d = ErrorDetail{Code: CodeTimeout, Message: "the request timed out"}
	case errors.As(err, &fibErr):
		d = fiberErrorDetail(fibErr)
	default:
		d = ErrorDetail{Code: CodeInternal, Message: "internal error"}
	}
	status, ok := codeStatus[d.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	var cmdErr *commandError
	if status >= 500 && errors.As(err, &cmdErr) {
		d.Check = cmdErr.check
		d.Message += "; the command may still take effect: read " + cmdErr.check + " before repeating it"
	}
	var ce *createError
	if status >= 500 && errors.As(err, &ce) {
		d.IdempotencyKey = ce.key
		d.Message += "; the run may have been created: retry with the header Idempotency-Key: " + ce.key +
			" to get it (or create it) exactly once"
	}
	return status, d
}

func validationMessage(e *process.ValidationError) string {
	if len(e.Fields) == 1 {
		return "invalid " + e.Fields[0].Field + ": " + e.Fields[0].Message
	}
	return "the request has invalid fields"
}

// fiberErrorDetail classifies the errors Fiber raises itself: no route,
// wrong method, a body over the limit, an unparsable request.
func fiberErrorDetail(e *fiber.Error) ErrorDetail {
	switch e.Code {
	case fiber.StatusNotFound:
		return ErrorDetail{Code: CodeNotFound, Message: "not found"}
	case fiber.StatusMethodNotAllowed:
		return ErrorDetail{Code: CodeMethodNotAllowed, Message: "method not allowed"}
	case fiber.StatusRequestEntityTooLarge:
		return ErrorDetail{Code: CodePayloadTooLarge, Message: "request body too large"}
	case fiber.StatusUnprocessableEntity:
		return ErrorDetail{Code: CodeValidation, Message: e.Message}
	case fiber.StatusTooManyRequests:
		return ErrorDetail{Code: CodeRateLimited, Message: "too many requests"}
	case fiber.StatusServiceUnavailable:
		return ErrorDetail{Code: CodeUnavailable, Message: "service unavailable, try again later"}
	}
	if e.Code >= 400 && e.Code < 500 {
		return ErrorDetail{Code: CodeBadRequest, Message: "bad request"}
	}
	return ErrorDetail{Code: CodeInternal, Message: "internal error"}
}

// handleError is the app's Fiber ErrorHandler: it writes the JSON error
// body and logs server-side failures with their real cause.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status, d := classify(err)
	d.RequestID = requestID(c)
	level, msg := slog.LevelDebug, "request refused"
	if status >= 500 {
		level, msg = slog.LevelError, "request failed"
	}
	s.log.LogAttrs(c.UserContext(), level, msg,
		slog.String("request_id", d.RequestID), slog.String("method", c.Method()),
		slog.String("path", c.Path()), slog.Int("status", status), slog.Any("error", err))
	if status == http.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="spectra"`)
	}
	if status == http.StatusServiceUnavailable && len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) == 0 {
		c.Set(fiber.HeaderRetryAfter, "5")
	}
	return c.Status(status).JSON(ErrorBody{Error: d})
}

// commandError is a command that failed after it was sent: past its
// deadline it may still take effect, so the answer names the resource
// whose state tells.
type commandError struct {
	check string // the path of the run, job, lot, … the command acts on
	err   error
}

func (e *commandError) Error() string { return "command on " + e.check + ": " + e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// Helpers that build the API's own errors.

func errUnauthorized(msg string, cause error) error {
	return &Error{Code: CodeUnauthorized, Message: msg, Err: cause}
}

func errForbidden(msg string) error { return &Error{Code: CodeForbidden, Message: msg} }

// invalid returns a validation error naming one field.
func invalid(field string, value any, allowed, msg string) error {
	ve := &process.ValidationError{}
	ve.Add(field, value, allowed, msg)
	return ve
}
