package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/diffill/diffill/model/kernels"
)

// runMain runs the command line as main does and returns its exit code,
// stdout and stderr.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// goFile writes a small Go file without a hole marker and returns its path.
func goFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "a.go")
	if err := os.WriteFile(f, []byte("package a\n\nfunc f() int {\n\treturn len()\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestModelFlagMessages: a --model that does not exist, or is a file, is
// said to be so, with what a model directory holds, before anything else
// (not "config.json: open ...: no such file").
func TestModelFlagMessages(t *testing.T) {
	file := goFile(t)
	missing := filepath.Join(t.TempDir(), "no-such-model")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"infill", "--model", missing, file}, "does not exist"},
		{[]string{"infill", "--model", file, "--at", "4:13", file}, "is a file, not a model directory"},
		{[]string{"infill", "--model", t.TempDir(), "--at", "4:13", file}, "has no config.json"},
		{[]string{"eval", "--model", missing, "--cases", file}, "does not exist"},
		{[]string{"serve", "--model", missing}, "does not exist"},
		{[]string{"model", "info", missing}, "does not exist"},
		{[]string{"model", "info", file}, "is a file, not a model directory"},
	} {
		code, _, stderr := runMain(t, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", tc.args, code, stderr, tc.want)
			continue
		}
		for _, w := range []string{"config.json", "model.safetensors", "tokenizer.json", "vocab.json"} {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: %q does not say that a model directory holds %s", tc.args, stderr, w)
			}
		}
		if strings.Contains(stderr, "open ") || strings.Contains(stderr, "not a directory") {
			t.Errorf("%v: %q is a raw file-system error", tc.args, stderr)
		}
		if tc.args[0] != "model" && !strings.Contains(stderr, "--model") {
			t.Errorf("%v: %q does not name the flag", tc.args, stderr)
		}
	}
}

// TestInfillDevice: infill takes --device as serve does (the README's
// "--device auto, the default" holds for it), and refuses a device it
// does not know, naming the ones it does.
func TestInfillDevice(t *testing.T) {
	file := goFile(t)
	code, out, stderr := runMain(t, "infill", "--model", tinyInfillModel, "--device", "cpu", "--max-tokens", "3", "--at", "4:13", file)
	if code != 0 || !strings.HasPrefix(out, "package a\n") {
		t.Errorf("infill --device cpu: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	// Before the command, it is said where flags go.
	code, _, stderr = runMain(t, "--device", "cpu", "infill", file)
	if code != 2 || !strings.Contains(stderr, "flags go after it") || !strings.Contains(stderr, "diffill infill --device cpu") {
		t.Errorf("diffill --device cpu infill: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runMain(t, "infill", "--device", "tpu", "--at", "4:13", file)
	if code != 1 || !strings.Contains(stderr, `--device "tpu": want auto, cpu or cuda`) {
		t.Errorf("infill --device tpu: exit %d, stderr %q", code, stderr)
	}
}

// TestInfillUsageMessages: no FILE says what to pass; a file without a
// hole says how to mark one or to use --at / --range, once prefixed.
func TestInfillUsageMessages(t *testing.T) {
	code, _, stderr := runMain(t, "infill")
	if code != 2 || !strings.Contains(stderr, "no FILE given") || !strings.Contains(stderr, "???") ||
		!strings.Contains(stderr, "--at") || !strings.Contains(stderr, "--jsonl") || strings.Count(stderr, "\n") > 4 {
		t.Errorf("infill with no file: exit %d, stderr %q", code, stderr)
	}
	file := goFile(t)
	code, _, stderr = runMain(t, "infill", "--model", tinyInfillModel, file)
	if code != 1 || !strings.Contains(stderr, `no hole marker "???"`) || !strings.Contains(stderr, "--at LINE:COL") ||
		!strings.Contains(stderr, "--range") || strings.Contains(stderr, "infill: infill:") {
		t.Errorf("infill on a file without a hole: exit %d, stderr %q", code, stderr)
	}
	// An engine error is prefixed once too.
	code, _, stderr = runMain(t, "infill", "--model", tinyInfillModel, "--sampler", "best", "--at", "4:13", file)
	if code != 1 || !strings.HasPrefix(stderr, "diffill infill: ") || strings.Contains(stderr, "infill: infill:") {
		t.Errorf("infill --sampler best: exit %d, stderr %q", code, stderr)
	}
}

// TestUnknownFlag: a mistyped flag gets one line and where to look, not
// the whole usage; -h still prints the usage.
func TestUnknownFlag(t *testing.T) {
	for _, cmd := range [][]string{{"infill"}, {"serve"}, {"eval"}, {"bench"}, {"model", "info"}} {
		args := append(append([]string{}, cmd...), "--bogus", "x")
		code, _, stderr := runMain(t, args...)
		name := "diffill " + strings.Join(cmd, " ")
		if cmd[0] == "model" {
			name = "diffill model info"
		}
		if code != 2 || strings.Count(stderr, "\n") != 2 || !strings.Contains(stderr, "-bogus") || !strings.Contains(stderr, "Run '"+name+" -h'") {
			t.Errorf("%v: exit %d, stderr %q; want 2 lines naming -bogus and %q", args, code, stderr, name+" -h")
		}
	}
	code, _, stderr := runMain(t, "infill", "-h")
	if code != 0 || !strings.Contains(stderr, "--at") || !strings.Contains(stderr, "-device") {
		t.Errorf("infill -h: exit %d, stderr %q", code, stderr)
	}
}

// TestVersion: `diffill version` names the Go toolchain, the kernels'
// path and the CPU features, and the VCS revision when the build has one.
func TestVersion(t *testing.T) {
	code, out, stderr := runMain(t, "version")
	if code != 0 || !strings.HasPrefix(out, "diffill ") || !strings.Contains(out, runtime.Version()) ||
		!strings.Contains(out, kernels.ISA()+" path") || !strings.Contains(out, "revision:") {
		t.Errorf("version: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if code, out2, _ := runMain(t, "--version"); code != 0 || out2 != out {
		t.Errorf("--version: exit %d, %q; want what version prints", code, out2)
	}
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Path: "github.com/diffill/diffill", Version: "v0.3.1"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := versionText(bi)
	for _, w := range []string{"diffill v0.3.1\n", "revision: 0123abc (2026-12-01T10:00:00Z), with uncommitted changes\n", "go:       go1.99 "} {
		if !strings.Contains(got, w) {
			t.Errorf("versionText: %q lacks %q", got, w)
		}
	}
}
