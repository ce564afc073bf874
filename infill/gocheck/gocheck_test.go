package gocheck

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/diffill/diffill/infill/workspace"
)

// holeMarker marks the span an answer fills in a testdata source file.
const holeMarker = "@@"

// summary is a verdict in the words of the testdata files: "ok", or the
// failed checks: parse, unresolved:NAME, type, repeats, suffix.
func summary(v Verdict) string {
	var w []string
	if !v.Parses {
		w = append(w, "parse")
	}
	for _, n := range v.Unresolved {
		w = append(w, "unresolved:"+n)
	}
	if len(v.TypeErrors) > 0 {
		w = append(w, "type")
	}
	if v.Repeats != "" {
		w = append(w, "repeats")
	}
	if v.DupSuffix {
		w = append(w, "suffix")
	}
	if len(w) == 0 {
		return "ok"
	}
	return strings.Join(w, " ")
}

// TestChecksGolden: each testdata/*.txtar is a package (a go.mod is added)
// with one file holding the hole marker, and a "want" section of lines
// `"answer" => verdict`. The comment "pkg: none" checks the file alone, as
// before the workspace has loaded.
func TestChecksGolden(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*.txtar")
	if len(paths) == 0 {
		t.Fatal("no testdata")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			ar, err := txtar.ParseFile(p)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/m\n\ngo 1.22\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var doc Doc
			var want []string
			for _, f := range ar.Files {
				if f.Name == "want" {
					want = strings.Split(strings.TrimSpace(string(f.Data)), "\n")
					continue
				}
				text := string(f.Data)
				path := filepath.Join(dir, f.Name)
				if i := strings.Index(text, holeMarker); i >= 0 {
					text = text[:i] + text[i+len(holeMarker):]
					doc = Doc{Path: path, Text: text, Start: i, End: i}
				}
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if doc.Path == "" {
				t.Fatal("no file holds the hole marker " + holeMarker)
			}
			if !strings.Contains(string(ar.Comment), "pkg: none") {
				w := workspace.New(dir, workspace.Options{})
				defer w.Close()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				doc.Pkg = w.Wait(ctx, doc.Path)
				cancel()
			}
			c := New(doc)
			for _, line := range want {
				q, verdict, ok := strings.Cut(line, " => ")
				if !ok {
					t.Fatalf("want line %q: not \"answer\" => verdict", line)
				}
				answer, err := strconv.Unquote(q)
				if err != nil {
					t.Fatalf("want line %q: %v", line, err)
				}
				v := c.Check(answer)
				if got := summary(v); got != verdict {
					t.Errorf("%q: got %s, want %s (%v)", answer, got, verdict, v.Reasons())
				}
			}
		})
	}
}

// TestParsingPrefix: a decode that runs past its answer (inside an
// auto-closed raw string: the span covers the closing backquote) gives
// back the beginning that parses in place; one that parses whole, or has
// no such beginning, gives "".
func TestParsingPrefix(t *testing.T) {
	src := "package main\n\ntype User struct {\n\tName  string `json:\"name\"`\n\tEmail string ``\n}\n"
	at := strings.Index(src, "``") + 1
	c := New(Doc{Path: "/a.go", Text: src, Start: at, End: at + 1})
	for _, tt := range []struct{ answer, want string }{
		{"json:\"name\"`\"`\"``", "json:\"name\"`"},
		{"json:\"email\"`", ""},
		{"`(", "`"},
	} {
		if got := c.ParsingPrefix(tt.answer); got != tt.want {
			t.Errorf("ParsingPrefix(%q) = %q, want %q", tt.answer, got, tt.want)
		}
	}
}
