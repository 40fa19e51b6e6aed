package api

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/process"
)

// defaultMaxJSONDepth is how deeply a request body's JSON may nest: recipes
// need three levels, so 32 leaves room and still stops pathological input.
const defaultMaxJSONDepth = 32

// Identifier shapes (actors/service.go makes run and job ids; API key ids
// are made here). Path parameters are checked before anything reads the
// store: a malformed id cannot exist, so it answers 404 like a missing one.
var (
	runIDPattern    = regexp.MustCompile(`^(ION|RTP)-\d{8}-[0-9A-F]{8}$`)
	jobIDPattern    = regexp.MustCompile(`^job-[0-9a-f]{12}$`)
	apiKeyIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// idParams are the path parameters holding ids, with their shapes.
var idParams = []struct {
	name    string
	pattern *regexp.Regexp
}{
	{"run_id", runIDPattern},
	{"job_id", jobIDPattern},
	{"key_id", apiKeyIDPattern},
}

// checkRequest refuses what a handler should never see: an id parameter
// of the wrong shape (404) and a JSON body nested deeper than the limit
// (422). It runs after authorisation, so a forbidden request is a 403
// whatever its path or body.
func (s *Server) checkRequest(c *fiber.Ctx) error {
	for _, p := range idParams {
		if v := c.Params(p.name); v != "" && !p.pattern.MatchString(v) {
			return &Error{Code: CodeNotFound, Message: "not found"}
		}
	}
	if err := checkDepth(c.Body(), s.cfg.MaxJSONDepth); err != nil {
		return err
	}
	if err := checkText(c); err != nil { // text.go
		return err
	}
	return c.Next()
}

// checkDepth fails with a validation error naming "body" when JSON nests
// deeper than limit. It only counts brackets outside strings, so it never
// fails on a body json.Unmarshal would accept at that depth, and costs one
// pass over the bytes.
func checkDepth(body []byte, limit int) error {
	depth, inString, escaped := 0, false, false
	for _, b := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == '{' || b == '[':
			depth++
			if depth > limit {
				return invalid("body", nil, "JSON nested at most "+strconv.Itoa(limit)+" levels deep",
					"the request body is nested too deeply")
			}
		case b == '}' || b == ']':
			depth--
		}
	}
	return nil
}

// strictObject parses a body that must be a JSON object holding only the
// allowed fields: each unknown field is a validation error (422) naming
// it. An empty body is an empty object when emptyOK is set.
func strictObject(body []byte, emptyOK bool, allowed ...string) (map[string]json.RawMessage, error) {
	if emptyOK && len(bytes.TrimSpace(body)) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	if err := checkDepth(body, defaultMaxJSONDepth); err != nil {
		return nil, err
	}
	fields, err := jsonObject(body)
	if err != nil {
		return nil, err
	}
	var ve process.ValidationError
	for _, name := range sortedKeys(fields) {
		if !slices.Contains(allowed, name) {
			ve.Add(name, nil, "one of: "+strings.Join(allowed, ", "), "unknown field")
		}
	}
	return fields, ve.Err()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// stringField reads an optional string field of at most maxLen bytes into
// ve; required makes a missing or empty one an error.
func stringField(fields map[string]json.RawMessage, ve *process.ValidationError, name string, maxLen int, required bool) string {
	raw := fields[name]
	if isNull(raw) {
		if required {
			ve.Add(name, nil, "a non-empty string", name+" is required")
		}
		return ""
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		ve.Add(name, rawValue(raw), "a string", name+" must be a string")
		return ""
	}
	switch {
	case required && strings.TrimSpace(v) == "":
		ve.Add(name, v, "a non-empty string", name+" is required")
	case len(v) > maxLen:
		ve.Add(name, nil, "at most "+strconv.Itoa(maxLen)+" bytes", name+" is too long")
	}
	return v
}
