package events

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "update the golden files in testdata/events")

// golden is a golden file: an event type's stored name (with its catalogue
// version) and the JSON of a payload with every field set.
type golden struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Every catalogue type's wire format is pinned by a golden file, so a
// change to an event's JSON shows in review. A type without one fails;
// `go test ./events -run TestGolden -update` writes it.
func TestGoldenEvents(t *testing.T) {
	dir := filepath.Join("testdata", "events")
	names := make([]string, 0, len(catalogue))
	for name := range catalogue {
		names = append(names, name)
	}
	slices.Sort(names)
	want := map[string]bool{}
	for _, name := range names {
		file := name + ".json"
		want[file] = true
		t.Run(name, func(t *testing.T) {
			e := catalogue[name]
			p := e.newFn()
			fill(reflect.ValueOf(p).Elem(), name)
			ev, err := NewWithID("00000000-0000-4000-8000-000000000001", reflect.ValueOf(p).Elem().Interface().(Payload), Metadata{})
			if err != nil {
				t.Fatalf("NewWithID(%s) = %v", name, err)
			}
			got := encodeGolden(t, golden{Type: ev.Type, Data: ev.Data})
			checkGolden(t, filepath.Join(dir, file), got)

			// What a store hands back decodes to the same payload.
			back, err := Decode(Record{Type: ev.Type, Data: ev.Data})
			if err != nil {
				t.Fatalf("Decode(%s) = %v", ev.Type, err)
			}
			if !reflect.DeepEqual(back, p) {
				t.Errorf("Decode(encode(%s)) = %+v, want %+v", name, back, p)
			}

			// Each older version with an upcaster has its own golden input
			// (written by hand, as the old code wrote it) and the payload
			// it upcasts to.
			for v := 1; v < e.version; v++ {
				old := fmt.Sprintf("%s.v%d", name, v)
				want[old+".json"], want[old+".upcast.json"] = true, true
				in, err := os.ReadFile(filepath.Join(dir, old+".json"))
				if err != nil {
					t.Fatalf("%s: version %d has no golden input: %v", name, v, err)
				}
				p, err := Decode(Record{Type: old, Data: in})
				if err != nil {
					t.Fatalf("Decode(%s) = %v", old, err)
				}
				data, err := json.Marshal(p)
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, filepath.Join(dir, old+".upcast.json"), encodeGolden(t, golden{Type: VersionedType(name), Data: data}))
			}
		})
	}
	// No golden file outlives its type.
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		if !want[filepath.Base(f)] && !*update {
			t.Errorf("%s: no catalogue type (or version) of that name", f)
		}
	}
}

// Metadata's JSON is pinned too: every event carries it.
func TestGoldenMetadata(t *testing.T) {
	var md Metadata
	fill(reflect.ValueOf(&md).Elem(), "metadata")
	data, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "metadata.json"), append(data, '\n'))
}

func encodeGolden(t *testing.T, g golden) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./events -run TestGolden -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the encoding (if the wire change is meant, run with -update and review the diff):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// fill sets every field of v to a value derived from its path, so the
// golden file shows every field (omitempty ones included) and a renamed
// field shows as a diff.
func fill(v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(lastName(path))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(len(path)%7 + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(len(path)%7 + 1))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(len(path)%7) + 0.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path)
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[json.RawMessage]() {
			v.SetBytes([]byte(`{"` + lastName(path) + `":1}`))
			return
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte(lastName(path)))
			return
		}
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), path+"[0]")
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMapWithSize(v.Type(), 1)
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, path+".key")
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, path+".value")
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Interface:
		if v.NumMethod() == 0 {
			v.Set(reflect.ValueOf(lastName(path)))
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6000000, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fill(v.Field(i), path+"."+f.Name)
			}
		}
	}
}

func lastName(path string) string {
	return strings.ToLower(path[strings.LastIndex(path, ".")+1:])
}
