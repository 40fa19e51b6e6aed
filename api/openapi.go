package api

import (
	"regexp"
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The OpenAPI document is generated from the route table at request time,
// so every route, with the permission it needs, is in it: the router, the
// RBAC tests and this document read the same table.

var pathParam = regexp.MustCompile(`:([a-z_]+)`)

func (s *Server) handleOpenAPI(c *fiber.Ctx) error {
	return c.JSON(s.openAPI())
}

// openAPI builds an OpenAPI 3.1 document of the API.
func (s *Server) openAPI() map[string]any {
	paths := map[string]map[string]any{}
	g := &schemaGen{defs: map[string]any{"Error": errorSchema, "IonRecipe": ionRecipeSchema, "RTPRecipe": rtpRecipeSchema}}
	for _, r := range s.routes {
		p := pathParam.ReplaceAllString(r.Path, "{$1}")
		op := map[string]any{
			"summary":     r.Summary,
			"operationId": operationID(r),
			"responses":   responsesFor(r, g),
		}
		if params := pathParam.FindAllStringSubmatch(r.Path, -1); len(params) > 0 {
			var ps []map[string]any
			for _, m := range params {
				ps = append(ps, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
			op["parameters"] = ps
		}
		if r.Permission != "" {
			op["security"] = []map[string][]string{{"bearer": {}}, {"apiKey": {}}}
			op["x-permission"] = string(r.Permission)
			op["x-roles"] = rolesWith(r.Permission)
		}
		if body := requestBody(r); body != nil {
			op["requestBody"] = body
		}
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(r.Method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Spectra process-control API",
			"version":     "1.0.0",
			"description": "Ion implantation and RTP runs on hardware-in-the-loop simulators, event-sourced. Every error has the shape of the Error schema.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
				"apiKey": map[string]any{"type": "apiKey", "in": "header", "name": "X-API-Key"},
			},
			"schemas": g.defs,
		},
	}
}

func operationID(r Route) string {
	id := strings.ToLower(r.Method) + strings.NewReplacer("/api/", "_", "/", "_", ":", "by_", ".", "_").Replace(r.Path)
	return strings.Trim(id, "_")
}

func rolesWith(p Permission) []string {
	var out []string
	for _, r := range Roles {
		if r.Can(p) {
			out = append(out, string(r))
		}
	}
	sort.Strings(out)
	return out
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

// responsesFor documents what a route answers: its successes (see
// successes) and the errors, all with the Error schema, that the error
// handler can give it.
func responsesFor(r Route, g *schemaGen) map[string]any {
	errResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
	}
	out := g.successResponses(r)
	out["500"] = errResp("internal error (logged on the server with the request id)")
	switch {
	case r.Permission != "":
		out["401"] = errResp("missing or invalid credentials")
		out["403"] = errResp("the role lacks " + string(r.Permission))
		out["422"] = errResp("invalid input: the fields, values and allowed ranges")
		out["429"] = errResp("rate limited; see Retry-After")
		out["503"] = errResp("the node cannot serve it now (starting, or its event store is unreachable); see Retry-After")
	case strings.HasPrefix(r.Path, "/api/auth/"):
		out["401"] = errResp("the key or refresh token is not valid")
		out["422"] = errResp("invalid input")
		out["429"] = errResp("rate limited; see Retry-After")
		out["503"] = errResp("credentials are not available on this node")
	case r.Path == "/readyz":
		out["503"] = errResp("not ready")
	}
	if r.Method != fiber.MethodGet {
		out["400"] = errResp("the body is not JSON")
		out["413"] = errResp("the body is too large")
	}
	if strings.Contains(r.Path, ":") {
		out["404"] = errResp("not found (or another organisation's)")
	}
	if r.Path == "/api/spc/charts" {
		out["404"] = errResp("no chart matches the filter")
	}
	if r.Method != fiber.MethodGet && (strings.Contains(r.Path, ":") || strings.HasSuffix(r.Path, "/runs")) {
		out["409"] = errResp("the command does not apply to the current state")
	}
	if r.Method != fiber.MethodGet && (strings.Contains(r.Path, ":") || commandRoutes[r.Path]) {
		out["504"] = errResp("the command was not confirmed in time and may still take effect; " +
			"the error names what to read (check) or the key to retry with (idempotency_key)")
	}
	return out
}

// requestBodies are request schemas other files register, by route.
var requestBodies = map[string]map[string]any{}

// commandRoutes are the routes without a path parameter that send a
// command under the command timeout (request.go, Server.command).
var commandRoutes = map[string]bool{"/api/ion/runs": true, "/api/rtp/runs": true, "/api/lots": true,
	"/api/schedules": true, "/api/recipes": true, "/api/rtp/tune/controller": true}

func requestBody(r Route) map[string]any {
	schema := requestBodies[r.Method+" "+r.Path]
	switch {
	case r.Method == fiber.MethodPost && r.Path == "/api/ion/runs":
		schema = ref("IonRecipe")
	case r.Method == fiber.MethodPost && r.Path == "/api/rtp/runs":
		schema = ref("RTPRecipe")
	case r.Method == fiber.MethodPost && r.Path == "/api/ion/simulate/dose_profile":
		schema = map[string]any{"type": "object", "required": []string{"species", "energy_kev", "dose_atoms_cm2"},
			"properties": pick(ionRecipeSchema, "species", "energy_kev", "dose_atoms_cm2", "tilt_deg", "twist_deg", "wafer_diameter_mm", "beam_current_ma", "scan_speed_mm_s")}
	case r.Method == fiber.MethodPost && r.Path == "/api/rtp/tune/controller":
		schema = map[string]any{"type": "object", "required": []string{"controller_type", "recipe", "optimization_target"},
			"properties": map[string]any{
				"controller_type":     map[string]any{"enum": []string{"pid", "mpc"}},
				"recipe":              ref("RTPRecipe"),
				"optimization_target": map[string]any{"enum": []string{"minimize_overshoot", "minimize_ramp_error", "minimize_settling_time"}},
			}}
	}
	if schema == nil {
		return nil
	}
	return map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
}

func pick(schema map[string]any, keys ...string) map[string]any {
	props := schema["properties"].(map[string]any)
	out := map[string]any{}
	for _, k := range keys {
		out[k] = props[k]
	}
	return out
}

func num(min, max float64) map[string]any {
	return map[string]any{"type": "number", "minimum": min, "maximum": max}
}

var errorSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{"error": map[string]any{
		"type":     "object",
		"required": []string{"code", "message"},
		"properties": map[string]any{
			"code":       map[string]any{"type": "string"},
			"message":    map[string]any{"type": "string"},
			"request_id": map[string]any{"type": "string"},
			"idempotency_key": map[string]any{"type": "string",
				"description": "on a failed create: the key a retry finds the run by"},
			"check": map[string]any{"type": "string",
				"description": "on a command that failed with 5xx: the resource to read before repeating it (it may still take effect)"},
			"fields": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
				"field": map[string]any{"type": "string"}, "value": map[string]any{}, "allowed": map[string]any{"type": "string"},
				"message": map[string]any{"type": "string"}}}},
		},
	}},
}

var faultSchema = map[string]any{"type": "object", "description": "honoured only on servers started with --allow-fault-injection",
	"properties": map[string]any{"kind": map[string]any{"enum": []string{"transient", "permanent", "interlock"}}, "at_progress_pct": num(0, 100)}}

var ionRecipeSchema = map[string]any{
	"type":     "object",
	"required": []string{"species", "energy_kev", "dose_atoms_cm2", "beam_current_ma"},
	"properties": map[string]any{
		"species":           map[string]any{"enum": []string{"B", "P", "As", "BF2", "In", "Sb"}},
		"energy_kev":        num(1, 200),
		"dose_atoms_cm2":    num(1e11, 1e16),
		"tilt_deg":          num(0, 90),
		"twist_deg":         num(0, 90),
		"beam_current_ma":   num(0.1, 50),
		"scan_speed_mm_s":   num(1, 100),
		"wafer_diameter_mm": map[string]any{"enum": []int{100, 150, 200, 300}},
		"wafer_id":          map[string]any{"type": "string"},
		"lot_id":            map[string]any{"type": "string"},
		"comments":          map[string]any{"type": "string"},
		"tool_id":           map[string]any{"type": "string"},
		"priority":          map[string]any{"type": "integer"},
		"simulate_fault":    faultSchema,
	},
}

var rtpRecipeSchema = map[string]any{
	"type":     "object",
	"required": []string{"segments"},
	"properties": map[string]any{
		"segments": map[string]any{"type": "array", "minItems": 1, "items": map[string]any{
			"type": "object", "required": []string{"target_temp_c", "duration_s"},
			"properties": map[string]any{
				"target_temp_c": num(400, 1200),
				"duration_s":    num(0, 300),
				"ramp_rate_c_s": map[string]any{"type": "number", "exclusiveMinimum": 0,
					"description": "≤ 100 °C/s up, ≤ 50 °C/s down; absent = a step at the tool's limit"},
			}}},
		"initial_temp_c":  map[string]any{"type": "number"},
		"n2_flow_slm":     num(0, 20),
		"o2_flow_slm":     num(0, 5),
		"controller_type": map[string]any{"enum": []string{"pid", "mpc"}},
		"pid_kp":          map[string]any{"type": "number", "minimum": 0},
		"pid_ki":          map[string]any{"type": "number", "minimum": 0},
		"pid_kd":          map[string]any{"type": "number", "minimum": 0},
		"wafer_id":        map[string]any{"type": "string"},
		"lot_id":          map[string]any{"type": "string"},
		"comments":        map[string]any{"type": "string"},
		"tool_id":         map[string]any{"type": "string"},
		"priority":        map[string]any{"type": "integer"},
		"simulate_fault":  faultSchema,
		"ion_implant_context": map[string]any{"type": "object", "properties": map[string]any{
			"species": map[string]any{"enum": []string{"B", "P", "As", "BF2", "In", "Sb"}}, "energy_kev": num(1, 200), "dose_atoms_cm2": num(1e11, 1e16)}},
	},
}
