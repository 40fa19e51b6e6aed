package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/spectra-fab/spectra/process"
)

// Free text is data, never layout: every string a request carries (in its
// JSON body, at any depth, and in its query) is valid UTF-8, has no
// control characters, no bidirectional overrides or line separators that
// could reorder or break what a person reads, and a bounded length.
// Multi-line text is allowed in the few fields meant for prose.

// Text limits, in characters.
const (
	maxTextLen  = 256  // names, ids, tags: anything not listed below
	maxProseLen = 2000 // the prose fields
)

// proseFields may hold longer text, with newlines and tabs.
var proseFields = map[string]bool{"comments": true, "description": true, "notes": true, "reason": true, "message": true}

// longFields hold credentials longer than names (?token=<JWT> on streams).
var longFields = map[string]int{"token": 8192}

// textProblem says what is wrong with s as text for field, "" if nothing.
func textProblem(field string, s string) (allowed, problem string) {
	limit, prose := maxTextLen, proseFields[field]
	if prose {
		limit = maxProseLen
	}
	if n, ok := longFields[field]; ok {
		limit = n
	}
	allowed = fmt.Sprintf("at most %d characters of text without control characters", limit)
	if prose {
		allowed = fmt.Sprintf("at most %d characters of text; newlines and tabs, no other control characters", limit)
	}
	if !utf8.ValidString(s) {
		return allowed, "not valid UTF-8"
	}
	if utf8.RuneCountInString(s) > limit {
		return allowed, "too long"
	}
	for _, r := range s {
		switch {
		case prose && (r == '\n' || r == '\t'):
		case unicode.IsControl(r):
			return allowed, fmt.Sprintf("holds the control character %U", r)
		case r == '\u2028' || r == '\u2029' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069'):
			return allowed, fmt.Sprintf("holds the layout character %U", r)
		}
	}
	return "", ""
}

// checkText walks a JSON body and the query string and reports every
// string that breaks the text policy, each as a field error.
func checkText(c *fiber.Ctx) error {
	var ve process.ValidationError
	body := bytes.TrimSpace(c.Body())
	if len(body) > 0 && (body[0] == '{' || body[0] == '[') {
		if !utf8.Valid(body) {
			// encoding/json would silently replace the bad bytes.
			ve.Add("body", nil, "UTF-8 JSON", "the request body is not valid UTF-8")
		} else {
			var v any
			if json.Unmarshal(body, &v) == nil {
				walkText(&ve, "", v)
			}
		}
	}
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		name := string(k)
		if allowed, problem := textProblem(name, string(k)); problem != "" {
			ve.Add("query", nil, allowed, "a query parameter name "+problem)
			return
		}
		if allowed, problem := textProblem(name, string(v)); problem != "" {
			ve.Add(name, nil, allowed, name+" "+problem)
		}
	})
	return ve.Err()
}

// walkText checks the strings of v, path naming where v is.
func walkText(ve *process.ValidationError, path string, v any) {
	switch x := v.(type) {
	case string:
		name := path
		if i := lastName(path); i >= 0 {
			name = path[i:]
		}
		if allowed, problem := textProblem(name, x); problem != "" {
			ve.Add(orBody(path), nil, allowed, orBody(path)+" "+problem)
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			e := x[k]
			if allowed, problem := textProblem("", k); problem != "" {
				ve.Add(orBody(path), nil, allowed, "a field name "+problem)
				continue
			}
			p := k
			if path != "" {
				p = path + "." + k
			}
			walkText(ve, p, e)
		}
	case []any:
		for i, e := range x {
			walkText(ve, path+"["+strconv.Itoa(i)+"]", e)
		}
	}
}

// lastName is where the last field name of path starts (after a '.'), or
// -1 when path ends with an index.
func lastName(path string) int {
	if path == "" || path[len(path)-1] == ']' {
		return -1
	}
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			return i + 1
		}
	}
	return 0
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}
