package main

import (
	"context"
	"testing"

	"github.com/diffill/diffill/infill"
)

// qualityFloors are the built-in model's figures on a fixed slice of the
// dev set (TestQualityFloors' cases from zap in the module cache), less a
// margin of two cases of exact match and 0.04 of edit similarity for
// kernels that round differently (measured on an AVX-512 machine).
var qualityFloors = map[string]map[string]struct{ em, es float64 }{
	"none": { // the engine alone; measured 0.100 / 0.349, 0.133 / 0.342, 0.000 / 0.187
		"cursor": {0.033, 0.30},
		"line":   {0.067, 0.30},
		"block":  {0, 0.14},
	},
	"copy": { // with the copy prior over the document, as the server runs; measured 0.100 / 0.378, 0.033 / 0.352, 0.000 / 0.229
		"cursor": {0.033, 0.33},
		"line":   {0, 0.31},
		"block":  {0, 0.19},
	},
}

// TestQualityFloors runs the built-in model, defaults, on 90 cases cut
// from go.uber.org/zap in the module cache (seed 1, 30 a kind) without and
// with the copy prior, and fails when a kind falls under its floor.
// It skips when zap is not in the module cache (fails under DIFFILL_E2E=1).
func TestQualityFloors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built-in model on 90 cases")
	}
	dir := moduleDir(t, "go.uber.org/zap@v1.28.0")
	cs, err := cutWorkspaceCases([]string{dir}, cutOptions{perKind: 30, seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	scores := map[string]*evalScore{}
	for _, cfg := range []evalConfig{
		{name: "none", cache: true, length: "auto"},
		{name: "copy", cache: true, length: "auto", copy: copyDoc},
	} {
		floors := qualityFloors[cfg.name]
		sc, err := evalRun(context.Background(), m, nil, cs, cfg, infill.DefaultParams(), "auto", false, nil)
		if err != nil {
			t.Fatal(err)
		}
		scores[cfg.name] = sc
		for kind, floor := range floors {
			g := sc.Groups[kind]
			t.Logf("%s %s: exact match %.3f, edit similarity %.3f (%d cases)", cfg.name, kind, g.EM, g.ES, g.N)
			if g.EM < floor.em || g.ES < floor.es {
				t.Errorf("%s %s: exact match %.3f, edit similarity %.3f: under the floor %.3f / %.3f", cfg.name, kind, g.EM, g.ES, floor.em, floor.es)
			}
		}
	}
	// The copy prior's gain: edit similarity of the rest of a line and of
	// blocks (measured +0.029 and +0.042 here).
	for _, kind := range []string{"cursor", "block"} {
		if a, b := scores["none"].Groups[kind].ES, scores["copy"].Groups[kind].ES; b <= a {
			t.Errorf("%s: edit similarity %.3f with the copy prior, %.3f without", kind, b, a)
		}
	}
}
