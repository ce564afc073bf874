package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/infill/workspace"
	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/builtin"
)

// decodeFlags registers the decoding knobs shared by `infill` and `eval`
// and returns the Params they fill.
func decodeFlags(fs *flag.FlagSet) *infill.Params {
	p := infill.DefaultParams()
	fs.IntVar(&p.Steps, "steps", p.Steps, "denoising steps (0: up to one per mask; a cap for the threshold schedule)")
	fs.StringVar(&p.Sampler, "sampler", p.Sampler, "unmasking order: confidence, margin, entropy or random")
	fs.StringVar(&p.Schedule, "schedule", p.Schedule, "masks unmasked per step: fixed, dream or threshold")
	fs.Float64Var(&p.Threshold, "threshold", p.Threshold, "probability above which the threshold schedule unmasks")
	fs.Float64Var(&p.Temperature, "temperature", p.Temperature, "sampling temperature (0: most likely token)")
	fs.IntVar(&p.TopK, "top-k", p.TopK, "sample among the k most likely tokens (0: all)")
	fs.Float64Var(&p.TopP, "top-p", p.TopP, "sample within this probability mass (0: all)")
	fs.Uint64Var(&p.Seed, "seed", p.Seed, "random seed")
	fs.IntVar(&p.MaxTokens, "max-tokens", p.MaxTokens, "masks per span (0: chosen per mode)")
	fs.IntVar(&p.ContextTokens, "context", p.ContextTokens, "token budget of the text around the spans")
	fs.IntVar(&p.BlockSize, "block", p.BlockSize, "semi-autoregressive block size in masks (0: whole span)")
	fs.StringVar(&p.Length, "length", p.Length, "length policy: auto, pad, expand, fixed or multi")
	fs.Float64Var(&p.PadPenalty, "pad-penalty", p.PadPenalty, "confidence factor of pad/EOS proposals (1: none)")
	fs.Float64Var(&p.EndThreshold, "end-threshold", p.EndThreshold, "commit a span's end where the model proposes it with this probability (1: rank ends like other tokens)")
	fs.Float64Var(&p.Doubt, "doubt", p.Doubt, "--rewrite re-masks only tokens the model finds less probable than this (1: any, up to the strength)")
	fs.Float64Var(&p.RewriteMargin, "rewrite-margin", p.RewriteMargin, "--rewrite keeps its new text only if the model finds it this much more probable (nats) than the old")
	fs.IntVar(&p.Candidates, "candidates", p.Candidates, "distinct answers to produce")
	fs.StringVar(&p.Recompute, "recompute", p.Recompute, "what a cached step recomputes: span or masks")
	fs.BoolVar(&p.SingleLine, "single-line", p.SingleLine, "complete one line only (default: decided by the cursor's line)")
	return &p
}

// checkModelFlags checks a command's --model and --device flags before any
// work, so that a mistake in them is what the user hears first.
func checkModelFlags(dir, device string) error {
	if err := checkDevice(device); err != nil {
		return err
	}
	if dir != "" {
		if err := model.CheckDir(dir); err != nil {
			return fmt.Errorf("--model: %w; leave --model out to use the built-in model", err)
		}
	}
	return nil
}

// loadCLIModel loads the model of a command's --model and --device flags
// (see loadInfillModel, attachDevice). Which device it runs on goes to
// stderr when the user named one or a GPU is used; "auto" falling back to
// the CPU is the common case and says nothing.
func loadCLIModel(dir, device string, stderr io.Writer) (*model.Model, error) {
	if err := checkModelFlags(dir, device); err != nil {
		return nil, err
	}
	m, err := loadInfillModel(dir)
	if err != nil {
		return nil, err
	}
	var said []string
	got, err := attachDevice(m, device, func(format string, a ...any) { said = append(said, fmt.Sprintf(format, a...)) })
	if err != nil {
		m.Close()
		return nil, err
	}
	if got != "cpu" || device != "auto" && device != "" {
		for _, l := range said {
			fmt.Fprintln(stderr, l)
		}
	}
	return m, nil
}

// loadInfillModel loads a checkpoint directory, or the built-in model when
// dir is empty.
func loadInfillModel(dir string) (*model.Model, error) {
	if dir == "" {
		return loadBuiltin()
	}
	m, err := model.Load(dir)
	if err != nil {
		return nil, err
	}
	if m.Tokenizer == nil {
		m.Close()
		return nil, fmt.Errorf("%s: no tokenizer files (tokenizer.json, or vocab.json and merges.txt)", dir)
	}
	return m, nil
}

func runInfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diffill infill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage:
  diffill infill [flags] FILE          fill every hole (???) jointly; print the result
  diffill infill --at L:C FILE         complete at line L, column C (1-based; columns in characters)
  diffill infill --range L1:C1-L2:C2 FILE       infill the range (end exclusive)
  diffill infill --range ... --rewrite S FILE   rewrite a fraction S in (0, 1] of it
  diffill infill --jsonl               stdin: {"prefix","suffix","max_tokens"?,"path"?} per line
                                       ("path": the absolute path of the file prefix+suffix is);
                                       stdout: {"middle"} (or {"error"}) per line, in order

Flags:
`)
		fs.PrintDefaults()
	}
	p := decodeFlags(fs)
	modelDir := fs.String("model", "", "checkpoint `directory` (default: the built-in model)")
	device := fs.String("device", "auto", "`device` to run the model on: auto (a GPU if there is one), cpu or cuda")
	at := fs.String("at", "", "complete at LINE:COL")
	rng := fs.String("range", "", "infill the range L1:C1-L2:C2")
	rewrite := fs.Float64("rewrite", 0, "rewrite the --range with this strength in (0, 1]")
	holes := fs.String("hole", p.HoleMarker, "hole marker")
	jsonl := fs.Bool("jsonl", false, "read requests from stdin as JSON lines")
	middle := fs.Bool("middle", false, "print only the new text of each span, not the whole file")
	noCache := fs.Bool("no-cache", false, "recompute the whole canvas at every step")
	snippetBytes := fs.Int("snippet-bytes", workspace.DefaultConfig.Budget, "byte budget of the workspace context (snippets of the file's package and imports) for --jsonl lines with a \"path\" (0: none)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	p.HoleMarker = *holes
	if err := checkModelFlags(*modelDir, *device); err != nil {
		return err
	}
	if *jsonl {
		if fs.NArg() != 0 || *at != "" || *rng != "" {
			fmt.Fprintln(stderr, "diffill infill: --jsonl takes no FILE, --at or --range")
			return errUsage
		}
	} else if fs.NArg() == 0 {
		fmt.Fprintf(stderr, "diffill infill: no FILE given: pass the file to fill, with %s where code should go\n"+
			"(or --at LINE:COL to complete at a point, --range L1:C1-L2:C2 to infill a range), or --jsonl to read cases from stdin.\n"+
			"Run 'diffill infill -h' for its flags.\n", p.HoleMarker)
		return errUsage
	} else if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "diffill infill: one FILE only (got %d: %s); flags go before it.\nRun 'diffill infill -h' for its flags.\n",
			fs.NArg(), strings.Join(fs.Args(), " "))
		return errUsage
	}
	if *at != "" && *rng != "" || *rewrite != 0 && *rng == "" {
		fmt.Fprintln(stderr, "diffill infill: give --at, or --range (with --rewrite or not), or neither")
		return errUsage
	}

	var text string
	if !*jsonl {
		b, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		text = string(b)
	}
	req := &infill.Request{Text: text, Mode: infill.ModeFillHoles}
	if !*jsonl && *at == "" && *rng == "" && !strings.Contains(text, p.HoleMarker) {
		return fmt.Errorf("%s has no hole marker %q: put %q where code should go, or give --at LINE:COL to complete at a point "+
			"or --range L1:C1-L2:C2 to infill a range (--hole sets another marker)", fs.Arg(0), p.HoleMarker, p.HoleMarker)
	}
	switch {
	case *at != "":
		off, err := lineCol(text, *at)
		if err != nil {
			return fmt.Errorf("--at: %w", err)
		}
		// Closers after the point (an editor's auto-closed brackets) are
		// completed through, as the language server does.
		req.Mode, req.Spans = infill.ModeComplete, []infill.Span{{Start: off, End: infill.ClosingRest(text, off)}}
	case *rng != "":
		a, b, ok := strings.Cut(*rng, "-")
		if !ok {
			return fmt.Errorf("--range %q: want L1:C1-L2:C2", *rng)
		}
		s, err := lineCol(text, a)
		if err != nil {
			return fmt.Errorf("--range: %w", err)
		}
		e, err := lineCol(text, b)
		if err != nil {
			return fmt.Errorf("--range: %w", err)
		}
		if e < s {
			return fmt.Errorf("--range %q ends before it starts", *rng)
		}
		req.Mode, req.Spans = infill.ModeInfill, []infill.Span{{Start: s, End: e}}
		if *rewrite != 0 {
			if *rewrite < 0 || *rewrite > 1 {
				return fmt.Errorf("--rewrite %g: want a strength in (0, 1]", *rewrite)
			}
			req.Mode, p.Strength = infill.ModeRewrite, *rewrite
		}
	}
	req.Params = *p
	// The copy prior reads the document, as the server's does.
	cursor := strings.Index(text, p.HoleMarker)
	if len(req.Spans) > 0 {
		cursor = req.Spans[0].Start
	}
	req.Corpus = workspace.Corpus(text, cursor, "")

	m, err := loadCLIModel(*modelDir, *device, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	eng := infill.NewEngine(m, infill.WithCache(!*noCache))
	if *jsonl {
		wc := workspace.DefaultConfig
		wc.Budget = *snippetBytes
		sess := workspace.NewSession(workspace.Options{})
		defer sess.Close()
		return infillJSONL(ctx, eng, *p, &jsonlContext{sess, wc}, os.Stdin, stdout)
	}
	res, err := eng.Run(ctx, req)
	if err != nil {
		return err
	}
	best := res.Candidates[0]
	if *middle {
		for _, e := range best.Edits {
			fmt.Fprintln(stdout, e.NewText)
		}
		return nil
	}
	_, err = io.WriteString(stdout, infill.Apply(text, best.Edits))
	return err
}

// lineCol converts "LINE:COL" (1-based; COL counts characters, and may be
// one past the end of the line) to a byte offset.
func lineCol(text, s string) (int, error) {
	ls, cs, ok := strings.Cut(s, ":")
	line, err1 := strconv.Atoi(ls)
	col, err2 := strconv.Atoi(cs)
	if !ok || err1 != nil || err2 != nil || line < 1 || col < 1 {
		return 0, fmt.Errorf("%q: want LINE:COL, both from 1", s)
	}
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(text[off:], '\n')
		if i < 0 {
			return 0, fmt.Errorf("%q: the text has %d lines", s, l)
		}
		off += i + 1
	}
	end := strings.IndexByte(text[off:], '\n')
	if end < 0 {
		end = len(text) - off
	}
	lineText := text[off : off+end]
	for c := 1; c < col; c++ {
		if lineText == "" {
			return 0, fmt.Errorf("%q: line %d has %d characters", s, line, c-1)
		}
		_, n := utf8.DecodeRuneInString(lineText)
		lineText = lineText[n:]
		off += n
	}
	return off, nil
}

// jsonlRequest is one line of `diffill infill --jsonl`.
type jsonlRequest struct {
	Prefix    *string `json:"prefix"`
	Suffix    *string `json:"suffix"`
	MaxTokens int     `json:"max_tokens"`
	// Path is the absolute path of the file prefix+suffix is, as if open
	// in an editor with that text: its package gives the context.
	Path string `json:"path"`
}

// infillJSONL answers one JSON line per input line, in order; a bad line
// gets an error line and the run goes on.
func infillJSONL(ctx context.Context, eng *infill.Engine, p infill.Params, wc *jsonlContext, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		middle, err := jsonlOne(ctx, eng, p, wc, []byte(line))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			enc.Encode(map[string]string{"error": fmt.Sprintf("line %d: %v", n, err)})
		} else {
			enc.Encode(map[string]string{"middle": middle})
		}
		// Answer each line as it is done, for callers that pipe.
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

// jsonlContext gives --jsonl lines with a "path" their workspace context
// (nil: none).
type jsonlContext struct {
	sess *workspace.Session
	cfg  workspace.Config
}

func jsonlOne(ctx context.Context, eng *infill.Engine, p infill.Params, wc *jsonlContext, line []byte) (string, error) {
	var r jsonlRequest
	if err := json.Unmarshal(line, &r); err != nil {
		return "", err
	}
	if r.Prefix == nil || r.Suffix == nil {
		return "", errors.New(`want "prefix" and "suffix"`)
	}
	if r.MaxTokens < 0 {
		return "", fmt.Errorf("max_tokens %d < 0", r.MaxTokens)
	}
	if r.Path != "" && !filepath.IsAbs(r.Path) {
		return "", fmt.Errorf("path %q: want an absolute path", r.Path)
	}
	if r.MaxTokens > 0 {
		p.MaxTokens = r.MaxTokens
	}
	at := len(*r.Prefix)
	text := *r.Prefix + *r.Suffix
	prelude := ""
	if r.Path != "" && wc != nil {
		// A script can wait for the package to load; an editor cannot.
		prelude = wc.sess.PreludeWait(ctx, r.Path, text, at, wc.cfg)
	}
	res, err := eng.Run(ctx, &infill.Request{
		Text:    text,
		Spans:   []infill.Span{{Start: at, End: at}},
		Mode:    infill.ModeInfill,
		Params:  p,
		Prelude: prelude,
		Corpus:  workspace.Corpus(text, at, ""),
	})
	if err != nil {
		return "", err
	}
	return res.Candidates[0].Edits[0].NewText, nil
}

// loadBuiltin loads the model embedded in the binary.
func loadBuiltin() (*model.Model, error) { return builtin.Load() }
