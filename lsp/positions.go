package lsp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"go.lsp.dev/jsonrpc2"
)

// checkPositions validates every Position and Range in a request's params
// before they are decoded, so that a malformed one is answered with
// InvalidParams instead of being read as 0:0 (encoding/json leaves a field
// it cannot decode at zero, and the server decodes params leniently so that
// unexpected types elsewhere do not refuse a whole request). required lists
// the top-level fields the method cannot do without ("position", "range").
//
// The LSP gives the keys "position" and "range" one meaning everywhere (a
// Position, a Range), so the check needs no schema of each method: it walks
// the params and checks what sits under those keys. A line or character is
// a uinteger: an integer in [0, 2^31-1].
func checkPositions(raw json.RawMessage, required ...string) error {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if len(required) > 0 {
			return jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: missing %s", strings.Join(required, " and "))
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: %v", err)
	}
	top, _ := v.(map[string]any)
	for _, k := range required {
		if _, ok := top[k]; !ok {
			return jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: missing %q", k)
		}
	}
	if err := walkPositions(v, "params", 0); err != nil {
		return jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: %v", err)
	}
	return nil
}

// maxWalkDepth bounds the walk; params nested deeper than any LSP message
// are refused rather than recursed into.
const maxWalkDepth = 64

func walkPositions(v any, path string, depth int) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("%s: nested more than %d levels deep", path, maxWalkDepth)
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := path + "." + k
			switch k {
			case "position":
				if err := checkPosition(e, p); err != nil {
					return err
				}
				continue
			case "range":
				if err := checkRange(e, p); err != nil {
					return err
				}
				continue
			}
			if err := walkPositions(e, p, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := walkPositions(e, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRange(v any, path string) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: want a range {\"start\": position, \"end\": position}, got %s", path, jsonKind(v))
	}
	for _, k := range []string{"start", "end"} {
		if err := checkPosition(m[k], path+"."+k); err != nil {
			return err
		}
	}
	return nil
}

func checkPosition(v any, path string) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: want a position {\"line\": n, \"character\": n}, got %s", path, jsonKind(v))
	}
	for _, k := range []string{"line", "character"} {
		e, ok := m[k]
		if !ok {
			return fmt.Errorf("%s.%s: missing", path, k)
		}
		n, ok := e.(json.Number)
		if !ok {
			return fmt.Errorf("%s.%s: want an integer, got %s", path, k, jsonKind(e))
		}
		i, err := n.Int64()
		if err != nil || i < 0 || i > math.MaxInt32 {
			return fmt.Errorf("%s.%s: %s is not an integer in [0, 2^31-1]", path, k, n)
		}
	}
	return nil
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", x)
	case json.Number:
		return "the number " + x.String()
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
