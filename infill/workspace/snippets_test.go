package workspace

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the golden snippets in testdata/snippets")

// cursorMarker marks the cursor in a golden file's document.
const cursorMarker = "‸"

// TestSnippetsGolden: each testdata/snippets/*.txtar is a small module
// (one file holds the cursor marker) and, in its "want" file, the snippets
// chosen there (every piece, a large budget, the default window), most relevant first. Run
// with -update to rewrite them.
func TestSnippetsGolden(t *testing.T) {
	paths, _ := filepath.Glob("testdata/snippets/*.txtar")
	if len(paths) == 0 {
		t.Fatal("no golden files")
	}
	for _, gp := range paths {
		t.Run(filepath.Base(gp), func(t *testing.T) {
			ar, err := txtar.ParseFile(gp)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			doc, text, off := "", "", -1
			var keep []txtar.File
			for _, f := range ar.Files {
				if f.Name == "want" {
					continue
				}
				keep = append(keep, f)
				data := string(f.Data)
				if i := strings.Index(data, cursorMarker); i >= 0 {
					data = data[:i] + data[i+len(cursorMarker):]
					doc, text, off = filepath.Join(dir, f.Name), data, i
				}
				if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if off < 0 {
				t.Fatalf("no %s in any file", cursorMarker)
			}
			w := New(dir, Options{})
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p := w.Wait(ctx, doc)
			cfg := DefaultConfig
			cfg.Budget, cfg.Pieces = 4000, AllPieces
			snips := Snippets(p, cfg.Query(doc, text, off, nil))
			var got bytes.Buffer
			for _, s := range snips {
				src := s.Path
				if rel, err := filepath.Rel(dir, s.Path); err == nil && !strings.HasPrefix(rel, "..") {
					src = filepath.ToSlash(rel)
				}
				fmt.Fprintf(&got, "== %s %s\n%s\n", s.Kind, src, strings.TrimRight(s.Text, "\n"))
			}
			if *update {
				ar.Files = append(keep, txtar.File{Name: "want", Data: got.Bytes()})
				if err := os.WriteFile(gp, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			var want []byte
			for _, f := range ar.Files {
				if f.Name == "want" {
					want = f.Data
				}
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("snippets:\n%s\nwant:\n%s", got.Bytes(), want)
			}
		})
	}
}
