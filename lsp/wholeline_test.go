package lsp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/model/builtin"
)

var (
	builtinOnce   sync.Once
	builtinEngine *infill.Engine
	builtinErr    error
)

// builtinLoader serves the built-in model for the model setting "": the
// one model whose answers mean something, so that the indentation it
// leaves is the engine's doing.
func builtinLoader(ctx context.Context, dir, device string) (Engine, error) {
	if dir != "" {
		return tinyLoader(ctx, dir, device)
	}
	builtinOnce.Do(func() {
		m, err := builtin.Load()
		if err != nil {
			builtinErr = err
			return
		}
		builtinEngine = infill.NewEngine(m)
	})
	return builtinEngine, builtinErr
}

// TestWholeLineCommands runs diffill.rewriteRange and diffill.infillRange
// as editors send them for a whole line (issue 11: VS Code's "Rewrite
// Selection" with nothing selected, Neovim's :DiffillRewrite without a
// range, a line-wise :'<,'>DiffillInfill): a range from character 0 to the
// end of the line, or to character 0 of the next. Over real pipes, with
// the client applying the edit, on strings/builder.go with the built-in
// model (and the tiny checkpoint: its text is noise, but the lines around
// must stay). The applied edit keeps the line's indentation and its line
// break, and every other line.
func TestWholeLineCommands(t *testing.T) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "src", "strings", "builder.go"))
	if err != nil {
		t.Skipf("no strings/builder.go in GOROOT: %v", err)
	}
	text := string(src)
	lines := strings.Split(text, "\n")
	var targets []int // 0-based lines of the issue
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case "copy(buf, b.buf)", "b.addr = nil", "return unsafe.String(unsafe.SliceData(b.buf), len(b.buf))":
			targets = append(targets, i)
		}
	}
	if len(targets) != 3 {
		t.Fatalf("found %d of the issue's lines in strings/builder.go", len(targets))
	}
	loaders := map[string]Loader{"builtin": builtinLoader, "tiny": tinyLoader}
	for name, load := range loaders {
		if name == "builtin" {
			if _, err := builtin.Load(); err != nil {
				t.Logf("no built-in model: %v", err)
				continue
			}
		}
		s := start(t, sessionOptions{load: load})
		for _, cmd := range []string{CommandRewriteRange, CommandInfillRange} {
			for _, ln := range targets {
				for _, toNext := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/%s/%d/next=%v", name, cmd, ln+1, toNext), func(t *testing.T) {
						uri := protocol.DocumentURI(fmt.Sprintf("file:///%s/%s/%d/%v/builder.go", name, cmd, ln, toNext))
						s.Open(uri, "go", text)
						end := protocol.Position{Line: uint32(ln), Character: uint32(len([]rune(lines[ln])))}
						if toNext {
							end = protocol.Position{Line: uint32(ln + 1)}
						}
						r := protocol.Range{Start: protocol.Position{Line: uint32(ln)}, End: end}
						var res commandResult
						if err := s.Call(ctxT(t), protocol.MethodWorkspaceExecuteCommand, commandParams(cmd, uri, 1, &r), &res); err != nil {
							t.Fatal(err)
						}
						got := s.Doc(uri).Text()
						if !res.Applied && got != text {
							t.Fatalf("not applied (%+v), yet the text changed", res)
						}
						gotLines := strings.Split(got, "\n")
						// Lines after the target, counted from the end: an
						// infill may write several lines.
						before, after := lines[:ln], lines[ln+1:]
						if len(gotLines) < len(lines) || strings.Join(gotLines[:ln], "\n") != strings.Join(before, "\n") ||
							strings.Join(gotLines[len(gotLines)-len(after):], "\n") != strings.Join(after, "\n") {
							t.Fatalf("lines around line %d changed:\n%s", ln+1, strings.Join(gotLines[max(0, ln-1):min(len(gotLines), ln+3)], "\n"))
						}
						if name != "builtin" {
							return // Qwen2's pattern puts the tab in the line's first token
						}
						indent := lines[ln][:len(lines[ln])-len(strings.TrimLeft(lines[ln], "\t"))]
						if l := gotLines[ln]; !strings.HasPrefix(l, indent) || strings.HasPrefix(l[len(indent):], " ") || strings.HasPrefix(l[len(indent):], "\t") {
							t.Errorf("line %d %q became %q: indentation lost", ln+1, lines[ln], l)
						}
					})
				}
			}
		}
	}
}
