package main

import (
	"bytes"
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInfillWholeLine is issue 11's reproduction on the command line:
// `diffill infill --range L:1-L:18 --rewrite 0.4 --seed 1` on
// strings/builder.go's "\tcopy(buf, b.buf)" turned it into
// "*copy(buf, b.buf)". With the built-in model, the rewrite and the
// infill of that line from column 1 keep its tab, leave the other lines
// alone and the file parsing.
func TestInfillWholeLine(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the built-in model")
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	file := filepath.Join(strings.TrimSpace(string(goroot)), "src", "strings", "builder.go")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Skipf("no strings/builder.go in GOROOT: %v", err)
	}
	lines := strings.Split(string(src), "\n")
	ln := -1
	for i, l := range lines {
		if l == "\tcopy(buf, b.buf)" {
			ln = i
		}
	}
	if ln < 0 {
		t.Fatal(`no "\tcopy(buf, b.buf)" line in strings/builder.go`)
	}
	for _, args := range [][]string{
		{"--rewrite", "0.4"},
		{},
	} {
		args = append(append([]string{"--range", fmt.Sprintf("%d:1-%d:18", ln+1, ln+1), "--seed", "1"}, args...), file)
		var out, errb bytes.Buffer
		if err := runInfill(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		got := strings.Split(out.String(), "\n")
		if len(got) != len(lines) || strings.Join(got[:ln], "\n") != strings.Join(lines[:ln], "\n") ||
			strings.Join(got[ln+1:], "\n") != strings.Join(lines[ln+1:], "\n") {
			t.Fatalf("%v: lines other than %d changed", args, ln+1)
		}
		if l := got[ln]; !strings.HasPrefix(l, "\t") || strings.TrimSpace(l) == "" || l[1] == ' ' || l[1] == '\t' {
			t.Errorf("%v: %q became %q", args, lines[ln], l)
		}
		if _, err := parser.ParseFile(token.NewFileSet(), file, out.String(), 0); err != nil {
			t.Errorf("%v: %q: the file no longer parses: %v", args, got[ln], err)
		}
	}
}
