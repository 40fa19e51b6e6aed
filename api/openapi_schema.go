package api

import (
	"encoding"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spectra-fab/spectra/process/ion"
	"github.com/spectra-fab/spectra/process/rtp"
	"github.com/spectra-fab/spectra/projections"
)

// What each route answers when it succeeds: its status, and the Go type
// its handler encodes (schemas are generated from the types, so they
// follow the code) or a media type. The OpenAPI tests check real
// responses against them; a route missing here has no documented success.
type success struct {
	status int
	body   any    // a value of the encoded type; nil: see media
	media  string // the media types, comma-separated, when the body is not JSON
	name   string // the schema's component name
	// also are the route's other success statuses, with the same body,
	// each with what it means.
	also map[int]string
}

// createdOrExisting is a create's other success: an Idempotency-Key that
// names an existing run (or lot) answers it as it is now.
var createdOrExisting = map[int]string{
	http.StatusOK: "the Idempotency-Key names a run this principal created before: that run, as it is now"}

var successes = map[string]success{
	"GET /":                                 {status: 200, media: "text/html"},
	"GET /dashboard/:file":                  {status: 200, media: "*/*"},
	"GET /healthz":                          {status: 200, body: statusBody{}, name: "Status"},
	"GET /readyz":                           {status: 200, body: statusBody{}, name: "Status"},
	"GET /metrics":                          {status: 200, media: "text/plain"},
	"GET /openapi.json":                     {status: 200, body: map[string]any{}, name: "OpenAPIDocument"},
	"POST /api/auth/token":                  {status: 200, body: tokenResponse{}, name: "Token"},
	"POST /api/auth/refresh":                {status: 200, body: tokenResponse{}, name: "Token"},
	"POST /api/auth/api-keys":               {status: 201, body: apiKeyView{}, name: "APIKey"},
	"GET /api/auth/api-keys":                {status: 200, body: apiKeyList{}, name: "APIKeyList"},
	"DELETE /api/auth/api-keys/:key_id":     {status: 200, body: apiKeyView{}, name: "APIKey"},
	"GET /api/audit":                        {status: 200, body: auditPage{}, name: "AuditPage"},
	"POST /api/ion/runs":                    {status: 201, body: createResponse{}, name: "RunCreated", also: createdOrExisting},
	"POST /api/rtp/runs":                    {status: 201, body: createResponse{}, name: "RunCreated", also: createdOrExisting},
	"GET /api/ion/runs":                     {status: 200, body: runList{}, name: "RunList"},
	"GET /api/rtp/runs":                     {status: 200, body: runList{}, name: "RunList"},
	"GET /api/ion/runs/:run_id":             {status: 200, body: runView{}, name: "Run"},
	"GET /api/rtp/runs/:run_id":             {status: 200, body: runView{}, name: "Run"},
	"DELETE /api/ion/runs/:run_id":          {status: 202, body: commandResponse{}, name: "CommandAccepted"},
	"DELETE /api/rtp/runs/:run_id":          {status: 202, body: commandResponse{}, name: "CommandAccepted"},
	"GET /api/ion/stream/:run_id":           {status: 101},
	"GET /api/rtp/stream/:run_id":           {status: 101},
	"GET /api/stream":                       {status: 101},
	"POST /api/ion/simulate/dose_profile":   {status: 200, body: ion.Profile{}, name: "DoseProfile"},
	"POST /api/rtp/tune/controller":         {status: 200, body: tuneResponse{}, name: "Tuning"},
	"GET /api/jobs":                         {status: 200, body: jobList{}, name: "JobList"},
	"GET /api/jobs/:job_id":                 {status: 200, body: jobView{}, name: "Job"},
	"POST /api/jobs/:job_id/cancel":         {status: 202, body: commandResponse{}, name: "CommandAccepted"},
	"POST /api/jobs/:job_id/pause":          {status: 202, body: commandResponse{}, name: "CommandAccepted"},
	"POST /api/jobs/:job_id/resume":         {status: 202, body: commandResponse{}, name: "CommandAccepted"},
	"POST /api/jobs/:job_id/retry":          {status: 202, body: commandResponse{}, name: "CommandAccepted"},
	"GET /api/jobs/:job_id/logs":            {status: 200, media: "text/plain,application/x-ndjson"},
	"GET /api/jobs/:job_id/artifacts/:name": {status: 200, media: "*/*"},
	"GET /api/spc/charts":                   {status: 200, body: chartList{}, name: "ChartList"},
	"GET /api/r2r/threads":                  {status: 200, body: threadList{}, name: "ThreadList"},
	"GET /api/runs/:run_id/events":          {status: 200, body: eventPage{}, name: "EventPage"},
	"GET /api/auth/me":                      {status: 200, body: me{}, name: "Me"},
	"GET /api/ion/runs/:run_id/profile":     {status: 200, body: runProfile{}, name: "RunProfile"},
	"GET /api/runs/:run_id/r2r":             {status: 200, body: runR2R{}, name: "RunR2R"},

	// Recipes, lots and schedules: api/fab.go adds theirs.
}

// object stands for a JSON object whose schema is not written yet.
type object struct{}

// statusBody answers /healthz and /readyz.
type statusBody struct {
	Status string `json:"status"`
}

// tuneResponse is a tuning's answer: the result, with the id and log
// position of the ControllerTuned event that records it.
type tuneResponse struct {
	rtp.TuneResult
	TuningID string `json:"tuning_id,omitempty"`
	Position uint64 `json:"position,omitempty"`
}

// schemaGen makes JSON Schemas (OpenAPI 3.1) of Go types as encoding/json
// encodes them.
type schemaGen struct {
	defs map[string]any
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	rawType       = reflect.TypeFor[json.RawMessage]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
	textType      = reflect.TypeFor[encoding.TextMarshaler]()
	runViewType   = reflect.TypeFor[runView]()
	objectType    = reflect.TypeFor[object]()
)

// component registers t's schema under name and returns a reference to it.
func (g *schemaGen) component(name string, t reflect.Type) map[string]any {
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = map[string]any{} // placeholder: no recursion
		g.defs[name] = g.schema(t)
	}
	return ref(name)
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{}
	case t == objectType:
		return map[string]any{"type": "object"}
	case t == runViewType:
		// A run's fields, and its results flattened in beside them
		// (see docs/results.md): any further property.
		s := g.schema(reflect.TypeFor[projections.Run]())
		s["additionalProperties"] = true
		return s
	case t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType):
		return map[string]any{} // encodes itself
	case t.Implements(textType):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{g.schema(t.Elem()), map[string]any{"type": "null"}}}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		// A nil slice encodes as null: the handlers answer [] for lists,
		// but nested slices of read models may be null.
		return map[string]any{"type": []string{"array", "null"}, "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": []string{"object", "null"}, "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		g.fields(t, props, &required)
		s := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	return map[string]any{}
}

// fields adds the JSON fields of struct t, embedded ones inlined.
func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props, required)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
}

// successResponses documents a route's successes by status.
func (g *schemaGen) successResponses(r Route) map[string]any {
	s, ok := successes[r.Method+" "+r.Path]
	if !ok {
		return map[string]any{"200": map[string]any{"description": "OK (not documented further)"}}
	}
	out := map[string]any{strconv.Itoa(s.status): g.successResponse(s, http.StatusText(s.status))}
	for status, desc := range s.also {
		out[strconv.Itoa(status)] = g.successResponse(s, desc)
	}
	return out
}

// successResponse is the response object of a success s.
func (g *schemaGen) successResponse(s success, desc string) map[string]any {
	switch {
	case s.status == http.StatusSwitchingProtocols:
		return map[string]any{"description": "WebSocket upgrade; messages as the API's stream documentation describes"}
	case s.body == nil && s.media == "": // no content (204)
		return map[string]any{"description": desc}
	case s.body == nil:
		content := map[string]any{}
		for _, m := range strings.Split(s.media, ",") {
			content[m] = map[string]any{}
		}
		return map[string]any{"description": desc, "content": content}
	}
	return map[string]any{"description": desc,
		"content": map[string]any{"application/json": map[string]any{"schema": g.component(s.name, reflect.TypeOf(s.body))}}}
}
