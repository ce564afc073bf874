package lsp

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.lsp.dev/protocol"
	"golang.org/x/tools/txtar"

	"github.com/diffill/diffill/lsp/document"
	"github.com/diffill/diffill/lsp/fake"
)

// TestScenarios runs the scenario files in testdata/scenarios. Each is a
// txtar archive that reads as a spec:
//
//	the comment says what the scenario shows;
//	one source file is the document, with ⁁ marking the cursor and ⟦ ⟧
//	  the selection (both removed before it is opened);
//	"settings.json" (optional) is sent as initializationOptions;
//	"encodings" (optional) lists the positionEncodings the client offers;
//	"script" holds requests, one a line (see runStep);
//	"want" holds what they answer, one line each, where «» stands for
//	  text the model writes (any), and «line» for model text without a
//	  line break. Positions are line:character in the negotiated encoding.
//
// The model's text is not spelled out: the tiny test checkpoint has random
// weights. What is specified is where edits go, how they are shaped and
// versioned, and what the server says.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			runScenario(t, file)
		})
	}
}

type scenario struct {
	uri      protocol.DocumentURI
	lang     string
	text     string
	cursor   int // byte offset, -1 if none
	sel      [2]int
	hasSel   bool
	settings json.RawMessage
	encs     []string
	script   []string
	want     []string
}

func parseScenario(t *testing.T, file string) *scenario {
	t.Helper()
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sc := &scenario{cursor: -1}
	for _, f := range ar.Files {
		data := string(f.Data)
		switch f.Name {
		case "settings.json":
			sc.settings = json.RawMessage(data)
		case "encodings":
			sc.encs = strings.Fields(data)
		case "script":
			sc.script = lines(data)
		case "want":
			sc.want = lines(data)
		default:
			if sc.uri != "" {
				t.Fatalf("two documents: %s and %s", sc.uri, f.Name)
			}
			sc.uri = protocol.DocumentURI("file:///" + f.Name)
			sc.lang = strings.TrimPrefix(filepath.Ext(f.Name), ".")
			// Line ends spelled \r in the file (CRLF documents) become
			// carriage returns.
			data = strings.ReplaceAll(data, `\r`, "\r")
			var b strings.Builder
			for _, r := range data {
				switch r {
				case '⁁':
					sc.cursor = b.Len()
				case '⟦':
					sc.sel[0], sc.hasSel = b.Len(), true
				case '⟧':
					sc.sel[1] = b.Len()
				default:
					b.WriteRune(r)
				}
			}
			sc.text = b.String()
		}
	}
	if sc.uri == "" || sc.script == nil {
		t.Fatal("a scenario needs a document and a script")
	}
	return sc
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func runScenario(t *testing.T, file string) {
	sc := parseScenario(t, file)
	init := fake.InitOptions{PositionEncodings: sc.encs}
	if sc.settings != nil {
		init.InitializationOptions = sc.settings
	}
	s := start(t, sessionOptions{init: init})
	if err := s.Open(sc.uri, sc.lang, sc.text); err != nil {
		t.Fatal(err)
	}
	doc := document.New(sc.uri, sc.lang, 1, sc.text)
	enc := s.Encoding()
	var got []string
	for _, step := range sc.script {
		got = append(got, s.runStep(t, sc, doc, enc, step)...)
	}
	if len(got) != len(sc.want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(sc.want), strings.Join(got, "\n"))
	}
	for i := range got {
		if !wantMatch(sc.want[i], got[i]) {
			t.Errorf("line %d:\n got: %s\nwant: %s", i+1, got[i], sc.want[i])
		}
	}
}

var (
	anyText  = regexp.QuoteMeta("«»")
	lineText = regexp.QuoteMeta("«line»")
)

// wantMatch matches a got line against a want line with «» and «line».
func wantMatch(want, got string) bool {
	re := regexp.QuoteMeta(want)
	re = strings.ReplaceAll(re, anyText, `.*`)
	re = strings.ReplaceAll(re, lineText, `(?:[^\\]|\\[^n])*`)
	return regexp.MustCompile("^" + re + "$").MatchString(got)
}

func fmtPos(p protocol.Position) string { return fmt.Sprintf("%d:%d", p.Line, p.Character) }
func fmtRange(r protocol.Range) string  { return fmtPos(r.Start) + "-" + fmtPos(r.End) }

// runStep runs one script line and renders the answer:
//
//	completion [L:C]          textDocument/completion at the cursor (or L:C)
//	inline                    textDocument/inlineCompletion at the cursor
//	codeActions               textDocument/codeAction on the selection (or cursor)
//	command NAME [vN] [S]     workspace/executeCommand on the selection, for
//	                          version N (default: the current one), strength S
func (s *session) runStep(t *testing.T, sc *scenario, doc *document.Document, enc document.Encoding, step string) []string {
	t.Helper()
	ctx := ctxT(t)
	f := strings.Fields(step)
	cursor := doc.Position(max(sc.cursor, 0), enc)
	selection := protocol.Range{Start: cursor, End: cursor}
	if sc.hasSel {
		selection = doc.Range(sc.sel[0], sc.sel[1], enc)
	}
	errLine := func(err error) []string {
		msg := err.Error()
		return []string{fmt.Sprintf("error %d %q", fake.Code(err), msg)}
	}
	switch f[0] {
	case "completion":
		at := cursor
		if len(f) > 1 {
			var l, c uint32
			fmt.Sscanf(f[1], "%d:%d", &l, &c)
			at = protocol.Position{Line: l, Character: c}
		}
		list, err := s.complete(ctx, sc.uri, at)
		if err != nil {
			return errLine(err)
		}
		out := []string{fmt.Sprintf("isIncomplete %v", list.IsIncomplete)}
		for i, it := range list.Items {
			if i > 0 && it.TextEdit.Range != list.Items[0].TextEdit.Range {
				out = append(out, fmt.Sprintf("item %d has another range: %s", i, fmtRange(it.TextEdit.Range)))
			}
		}
		if len(list.Items) > 0 {
			it := list.Items[0]
			out = append(out, fmt.Sprintf("item 0 preselect=%v %s %s", it.Preselect, fmtRange(it.TextEdit.Range), strconv.Quote(it.TextEdit.NewText)))
		}
		return out
	case "inline":
		list, err := s.inline(ctx, sc.uri, cursor, inlineTriggerInvoked)
		if err != nil {
			return errLine(err)
		}
		var out []string
		for _, it := range list.Items[:min(1, len(list.Items))] {
			out = append(out, fmt.Sprintf("inline %s %s", fmtRange(*it.Range), strconv.Quote(it.InsertText)))
		}
		return out
	case "codeActions":
		var out []string
		for _, a := range s.codeActions(t, sc.uri, selection) {
			raw, _ := json.Marshal(a.Command.Arguments[0])
			var args commandArgs
			json.Unmarshal(raw, &args)
			line := fmt.Sprintf("action %q %s %s v%d", a.Title, a.Kind, a.Command.Command, *args.TextDocument.Version)
			if args.Range != nil {
				line += " " + fmtRange(*args.Range)
			}
			out = append(out, line)
		}
		if out == nil {
			out = []string{"no actions"}
		}
		return out
	case "command":
		cur := s.Doc(sc.uri).Version
		version := cur
		arg := map[string]any{}
		for _, x := range f[2:] {
			if strings.HasPrefix(x, "v") {
				v, _ := strconv.Atoi(x[1:])
				version = int32(v)
			} else {
				arg["strength"], _ = strconv.ParseFloat(x, 64)
			}
		}
		arg["textDocument"] = map[string]any{"uri": sc.uri, "version": version}
		arg["range"] = selection
		before := len(s.AppliedEdits())
		var res commandResult
		err := s.Call(ctx, protocol.MethodWorkspaceExecuteCommand, map[string]any{"command": f[1], "arguments": []any{arg}}, &res)
		if err != nil {
			return errLine(err)
		}
		out := []string{fmt.Sprintf("applied %v", res.Applied)}
		for _, raw := range s.AppliedEdits()[before:] {
			var p applyWorkspaceEditParams
			json.Unmarshal(raw, &p)
			for _, dc := range p.Edit.DocumentChanges {
				for _, e := range dc.Edits {
					out = append(out, fmt.Sprintf("edit v%d %s %s", *dc.TextDocument.Version, fmtRange(e.Range), strconv.Quote(e.NewText)))
				}
			}
		}
		return out
	}
	t.Fatalf("unknown script step %q", step)
	return nil
}
