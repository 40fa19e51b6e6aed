package api

import (
	"testing"
)

// The OpenAPI document lists every route of the table with the permission
// it needs and the roles that hold it.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	h := newHarness(t)
	doc := h.srv.openAPI()
	paths := doc["paths"].(map[string]map[string]any)
	for _, r := range h.srv.Routes() {
		p := pathParam.ReplaceAllString(r.Path, "{$1}")
		op, ok := paths[p][lowerMethod(r.Method)].(map[string]any)
		if !ok {
			t.Errorf("route %s %s missing from the OpenAPI document", r.Method, r.Path)
			continue
		}
		if r.Permission != "" && op["x-permission"] != string(r.Permission) {
			t.Errorf("%s %s: x-permission = %v, want %s", r.Method, r.Path, op["x-permission"], r.Permission)
		}
	}
	create := paths["/api/ion/runs"]["post"].(map[string]any)
	roles := create["x-roles"].([]string)
	for _, r := range roles {
		if r == string(RoleViewer) {
			t.Errorf("viewer listed among the roles that may create ion runs: %v", roles)
		}
	}
}

// Every route documents its success: status and body (node's
// TestOpenAPIMatchesResponses checks them against a real node).
func TestOpenAPIDocumentsEverySuccess(t *testing.T) {
	h := newHarness(t)
	for _, r := range h.srv.Routes() {
		if _, ok := successes[r.Method+" "+r.Path]; !ok {
			t.Errorf("%s %s: no entry in successes (api/openapi_schema.go): what does it answer?", r.Method, r.Path)
		}
	}
}

func lowerMethod(m string) string {
	b := []byte(m)
	for i := range b {
		if b[i] >= 'A' && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}
