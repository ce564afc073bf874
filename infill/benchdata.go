package infill

import (
	_ "embed"
	"encoding/json"
	"strings"
)

// benchCases are 20 single-line and 10 three-line cases drawn from the
// held-out Go files of the built-in model's corpus
// (model/train/testdata/heldout.jsonl): code it was not trained on.
//
//go:embed benchdata/cases.jsonl
var benchCases string

// BenchCase is a document with a middle cut out, for benchmarks.
type BenchCase struct {
	Prefix, Middle, Suffix, Kind string
}

// BenchCases returns the cases `diffill bench` times: Kind "line" (the
// rest of a line after its indentation) and "block" (three whole lines).
func BenchCases() []BenchCase {
	var out []BenchCase
	for _, l := range strings.Split(strings.TrimSpace(benchCases), "\n") {
		var c struct{ Prefix, Middle, Suffix, Kind string }
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			panic("infill: bad embedded bench case: " + err.Error())
		}
		out = append(out, BenchCase(c))
	}
	return out
}

// ReferenceScript is infill/reference/decode.py: the engine's default
// decode in PyTorch, for `diffill bench` to time against on the same
// weights and canvases.
//
//go:embed reference/decode.py
var ReferenceScript string
