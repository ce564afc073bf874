package workspace

import (
	"context"
	"go/ast"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// moduleDir returns a module's root in the module cache, skipping the test
// (failing under DIFFILL_E2E=1) when it is not there.
func moduleDir(t *testing.T, modAtVersion string) string {
	t.Helper()
	dir := filepath.Join(Options{}.withDefaults().GOMODCACHE, modAtVersion)
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		msg := "module " + modAtVersion + " is not in the module cache (run go mod download in the repository)"
		if os.Getenv("DIFFILL_E2E") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

func wait(t *testing.T, w *Workspace, path string) *Package {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := w.Wait(ctx, path)
	if !p.Loaded {
		t.Fatalf("%s: not loaded within a minute", path)
	}
	return p
}

func fileOf(p *Package, path string) *File {
	for _, f := range p.Files {
		if f.Path == path {
			return f
		}
	}
	return nil
}

func hasDecl(a *API, text string) bool {
	for _, d := range a.Decls {
		if strings.Contains(d.Text, text) {
			return true
		}
	}
	return false
}

// TestLoadModule loads zap's root package from the module cache: its
// files, and the APIs of its imports from the same module, a required
// module and the standard library; testify, which its tests import and
// which is not in this module cache, is missing and costs nothing else.
func TestLoadModule(t *testing.T) {
	root := moduleDir(t, "go.uber.org/zap@v1.28.0")
	w := New(root, Options{})
	defer w.Close()
	logger := filepath.Join(root, "logger.go")
	if first := w.Package(logger); first.Loaded || len(first.Files) != 0 {
		t.Fatalf("the first snapshot was loaded before any load could run: %+v", first)
	}
	p := wait(t, w, logger)
	if p.Name != "zap" || p.Module == nil || p.Module.Path != "go.uber.org/zap" {
		t.Fatalf("package %q module %+v", p.Name, p.Module)
	}
	f := fileOf(p, logger)
	if f == nil || f.AST == nil || f.Err != nil || f.Overlay {
		t.Fatalf("logger.go: %+v", f)
	}
	for ip, want := range map[string]string{
		"go.uber.org/zap/zapcore": "func (l Level) Enabled(lvl Level) bool",
		"go.uber.org/multierr":    "func Append(left error, right error) error",
		"fmt":                     "func Sprintf(format string, a ...any) string",
	} {
		api := p.Imports[ip]
		if api == nil {
			t.Errorf("no API for %s (imports: %d)", ip, len(p.Imports))
			continue
		}
		if !hasDecl(api, want) {
			t.Errorf("%s: no %q in %d decls", ip, want, len(api.Decls))
		}
		for _, d := range api.Decls {
			if !exported(d.Name[strings.LastIndexByte(d.Name, '.')+1:]) {
				t.Errorf("%s: unexported %q", ip, d.Name)
			}
		}
	}
	if _, ok := p.Imports["github.com/stretchr/testify/assert"]; ok {
		t.Error("testify is not in the module cache, yet has an API")
	}
	core := p.Imports["go.uber.org/zap/zapcore"]
	ent := core.Lookup("Entry")
	if len(ent) == 0 || !strings.Contains(ent[0].Text, "LoggerName string") {
		t.Errorf("zapcore.Entry: %+v", ent)
	}
}

// TestOverlay: an open document's unsaved text wins over the disk, and
// closing it gives the disk back; a broken overlay still parses partly.
func TestOverlay(t *testing.T) {
	root := moduleDir(t, "go.uber.org/zap@v1.28.0")
	w := New(root, Options{})
	defer w.Close()
	path := filepath.Join(root, "level.go")
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	broken := string(disk) + "\nfunc UnsavedHelper(x int) string {\n\treturn fmt.Sprint(x\n"
	w.SetOverlay(path, broken)
	p := wait(t, w, path)
	f := fileOf(p, path)
	if f == nil || !f.Overlay || f.Text != broken {
		t.Fatalf("overlay not in the snapshot: %+v", f)
	}
	if f.Err == nil || f.AST == nil {
		t.Fatalf("broken overlay: err %v, ast %v", f.Err, f.AST != nil)
	}
	found := false
	for _, d := range declNames(f) {
		found = found || d == "UnsavedHelper"
	}
	if !found {
		t.Errorf("the broken overlay's new function is not among its declarations %v", declNames(f))
	}
	if other := fileOf(p, filepath.Join(root, "logger.go")); other == nil || other.AST == nil {
		t.Error("a broken file cost the package its other files")
	}
	w.ClearOverlay(path)
	p = wait(t, w, path)
	if f := fileOf(p, path); f == nil || f.Overlay || f.Text != string(disk) {
		t.Fatalf("after ClearOverlay: %+v", f)
	}
}

// TestDegrades: a module whose go.mod requires what is not in the module
// cache, a huge file and a file that is not Go at all load as less
// context, never as an error.
func TestDegrades(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.22\n\nrequire example.com/missing v1.2.3\n")
	write("a.go", "package m\n\nimport (\n\t\"example.com/missing/pkg\"\n\t\"strings\"\n)\n\nfunc A() string { return strings.ToUpper(pkg.X) }\n")
	write("b.go", "\x00\x01 not go at all {{{")
	huge := "package m\n\nvar Table = []int{\n" + strings.Repeat("\t1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,\n", 5<<20/55) + "}\n"
	write("huge.go", huge)
	w := New(dir, Options{})
	defer w.Close()
	p := wait(t, w, filepath.Join(dir, "a.go"))
	if p.Name != "m" || len(p.Files) != 3 {
		t.Fatalf("package %q, %d files", p.Name, len(p.Files))
	}
	if p.Imports["strings"] == nil || p.Imports["example.com/missing/pkg"] != nil {
		t.Errorf("imports %v", p.Imports)
	}
	h := fileOf(p, filepath.Join(dir, "huge.go"))
	if h == nil || h.Text != "" || h.AST != nil || h.Size < 5<<20 {
		t.Errorf("huge file: size %d, text %d bytes, ast %v", h.Size, len(h.Text), h.AST != nil)
	}
	// The same 5 MB as an open document's text: listed, not parsed.
	w.SetOverlay(filepath.Join(dir, "open.go"), huge)
	p = wait(t, w, filepath.Join(dir, "a.go"))
	if o := fileOf(p, filepath.Join(dir, "open.go")); o == nil || o.AST != nil || o.Size != len(huge) {
		t.Errorf("huge overlay: %+v", o)
	}
	if b := fileOf(p, filepath.Join(dir, "b.go")); b == nil || b.Err == nil {
		t.Errorf("non-Go file: %+v", b)
	}
}

func declNames(f *File) []string {
	var out []string
	for _, d := range f.AST.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			out = append(out, fd.Name.Name)
		}
	}
	return out
}
