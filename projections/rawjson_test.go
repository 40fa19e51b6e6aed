package projections_test

import "encoding/json"

// rawJSON encodes v for an event field that holds a JSON object.
func rawJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
