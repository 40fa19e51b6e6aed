package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// jsonObject parses a request body that must be a JSON object into its
// fields, keeping each value raw. A missing, malformed or non-object body is
// a validation error naming "body".
func jsonObject(body []byte) (map[string]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, invalid("body", nil, "a JSON object", "the request body is empty")
	}
	if body[0] != '{' {
		return nil, invalid("body", nil, "a JSON object", "the request body is not a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, invalid("body", nil, "a JSON object", "malformed JSON: "+jsonErrorText(err))
	}
	return fields, nil
}

// jsonErrorText describes a JSON decoding error without echoing the body.
func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return syn.Error() + " at offset " + strconv.FormatInt(syn.Offset, 10)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return "a " + typ.Value + " where " + typ.Type.String() + " was expected"
	}
	return "unexpected end of input"
}

// rawValue decodes a raw JSON value for echoing it in a field error.
func rawValue(raw json.RawMessage) any {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	return v
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// runOptions are the fields of a create-run body that are not the recipe's
// physics: where and how urgently to run it, and an injected fault.
type runOptions struct {
	ToolID      string
	Priority    int
	Fault       *process.Fault
	Disturbance *process.Disturbance
}

// Limits on run options.
const (
	maxToolIDLen         = 128
	maxIdempotencyKeyLen = 200
)

var faultKinds = []process.FaultKind{process.FaultTransient, process.FaultPermanent, process.FaultInterlock}

// parseRunOptions reads tool_id, priority and simulate_fault from a
// create-run body, reporting every invalid one.
func parseRunOptions(fields map[string]json.RawMessage) (runOptions, error) {
	var (
		o  runOptions
		ve process.ValidationError
	)
	if raw := fields["tool_id"]; !isNull(raw) {
		if err := json.Unmarshal(raw, &o.ToolID); err != nil {
			ve.Add("tool_id", rawValue(raw), "a string", "tool_id must be a string")
		} else if len(o.ToolID) > maxToolIDLen {
			ve.Add("tool_id", o.ToolID, "at most 128 characters", "tool_id is too long")
		}
	}
	if raw := fields["priority"]; !isNull(raw) {
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1e6 {
			ve.Add("priority", rawValue(raw), "an integer", "priority must be an integer")
		} else {
			o.Priority = int(f)
		}
	}
	if raw := fields["simulate_fault"]; !isNull(raw) {
		var f process.Fault
		switch err := json.Unmarshal(raw, &f); {
		case err != nil:
			ve.Add("simulate_fault", rawValue(raw), `{"kind", "at_progress_pct", "message"}`,
				"simulate_fault must be an object")
		case !slices.Contains(faultKinds, f.Kind):
			ve.Add("simulate_fault.kind", string(f.Kind), "transient, permanent, interlock", "unknown fault kind")
		case f.AtProgress < 0 || f.AtProgress > 100:
			ve.Add("simulate_fault.at_progress_pct", f.AtProgress, "0–100", "the fault's progress is out of range")
		default:
			o.Fault = &f
		}
	}
	if raw := fields["simulate_disturbance"]; !isNull(raw) {
		var d process.Disturbance
		if err := json.Unmarshal(raw, &d); err != nil {
			ve.Add("simulate_disturbance", rawValue(raw), `{"offset_pct", "drift_pct_per_min", "start_s"}`,
				"simulate_disturbance must be an object")
		} else {
			o.Disturbance = &d
		}
	}
	return o, ve.Err()
}

// command runs fn, a command of this request, with the request's context
// bounded by the server's command timeout. A failure names check, the
// resource the command acts on (commandError): after a 504 the client
// reads it to learn whether the command took effect.
func (s *Server) command(c *fiber.Ctx, check string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.CommandTimeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		return &commandError{check: check, err: err}
	}
	return nil
}

// optionalReason reads an optional {"reason": "..."} body, or the reason
// query parameter.
func optionalReason(c *fiber.Ctx) (string, error) {
	if len(bytes.TrimSpace(c.Body())) == 0 {
		return c.Query("reason"), nil
	}
	fields, err := strictObject(c.Body(), false, "reason") // unknown fields: 422
	if err != nil {
		return "", err
	}
	var reason string
	if raw := fields["reason"]; !isNull(raw) {
		if err := json.Unmarshal(raw, &reason); err != nil {
			return "", invalid("reason", rawValue(raw), "a string", "reason must be a string")
		}
	}
	if len(reason) > 1000 {
		return "", invalid("reason", nil, "at most 1000 characters", "reason is too long")
	}
	return reason, nil
}

// queryInt reads an integer query parameter within [lo, hi], recording an
// invalid one in ve.
func queryInt(c *fiber.Ctx, ve *process.ValidationError, name string, def, lo, hi int) int {
	s := c.Query(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		allowed := strconv.Itoa(lo) + "–" + strconv.Itoa(hi)
		if hi == math.MaxInt {
			allowed = "≥ " + strconv.Itoa(lo)
		}
		ve.Add(name, s, allowed, name+" must be an integer in "+allowed)
		return def
	}
	return n
}

// jobStatuses are the job statuses a list may filter on.
var jobStatuses = []string{
	projections.StatusQueued, projections.StatusRunning, projections.StatusPaused,
	projections.StatusCompleted, projections.StatusFailed, projections.StatusCancelled,
	projections.StatusRetrying,
}

// jobTypes are the seed's job types.
var jobTypes = []string{projections.JobTypeIon, projections.JobTypeRTP, "simulation", "calibration"}

// queryEnum reads an optional query parameter that must be one of allowed.
func queryEnum(c *fiber.Ctx, ve *process.ValidationError, name string, allowed []string) string {
	s := c.Query(name)
	if s != "" && !slices.Contains(allowed, s) {
		ve.Add(name, s, strings.Join(allowed, ", "), "unknown "+name)
		return ""
	}
	return s
}
