package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/diffill/diffill/model"
)

const modelUsage = `Usage:
  diffill model info DIR [--json]
      family, parameters, vocabulary, special token ids, dtype, file size, shift_logits
  diffill model forward DIR (--text TEXT | --ids 1,2,3) [--top N]
      run the model once; print as JSON the top-N token ids and logits at each
      position. TEXT may contain the model's special tokens, e.g. <|mask|>.
`

func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, modelUsage)
		return errUsage
	}
	switch args[0] {
	case "info":
		return runModelInfo(args[1:], stdout, stderr)
	case "forward":
		return runModelForward(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, modelUsage)
		return nil
	}
	fmt.Fprintf(stderr, "diffill model: unknown subcommand %q\n\n%s", args[0], modelUsage)
	return errUsage
}

// parseModelFlags parses flags that may come before or after the DIR
// argument, and returns DIR.
func parseModelFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (string, error) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, modelUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	var dir string
	for {
		if err := parseFlags(fs, args, stderr); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		if dir != "" {
			fmt.Fprintf(stderr, "%s: one DIR only (got %q and %q)\n", fs.Name(), dir, fs.Arg(0))
			return "", errUsage
		}
		dir = fs.Arg(0)
		args = fs.Args()[1:]
	}
	if dir == "" {
		fs.Usage()
		return "", errUsage
	}
	return dir, nil
}

// modelInfo is what `diffill model info --json` prints.
type modelInfo struct {
	Dir           string           `json:"dir"`
	Family        string           `json:"family"`
	ModelType     string           `json:"model_type"`
	Architecture  string           `json:"architecture,omitempty"`
	Parameters    int64            `json:"parameters"`
	Vocab         int              `json:"vocab"`
	TokenizerSize int              `json:"tokenizer_vocab,omitempty"`
	Layers        int              `json:"layers"`
	Hidden        int              `json:"hidden"`
	Heads         int              `json:"heads"`
	KVHeads       int              `json:"kv_heads"`
	HeadDim       int              `json:"head_dim"`
	Intermediate  int              `json:"intermediate"`
	MaxPositions  int              `json:"max_positions"`
	RopeTheta     float64          `json:"rope_theta"`
	NormEps       float64          `json:"norm_eps"`
	TiedEmbedding bool             `json:"tied_embeddings"`
	DType         string           `json:"dtype"`
	FileBytes     int64            `json:"file_bytes"`
	ShiftLogits   bool             `json:"shift_logits"`
	Special       map[string]int32 `json:"special_ids"`
}

func runModelInfo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diffill model info", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	dir, err := parseModelFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	m, err := model.Load(dir)
	if err != nil {
		return err
	}
	defer m.Close()
	c := m.Config
	info := modelInfo{
		Dir: dir, Family: string(c.Family), ModelType: c.ModelType, Architecture: c.Description,
		Parameters: m.Params, Vocab: c.Vocab, Layers: c.Layers, Hidden: c.Hidden, Heads: c.Heads,
		KVHeads: c.KVHeads, HeadDim: c.HeadDim, Intermediate: c.Intermediate, MaxPositions: c.MaxPositions,
		RopeTheta: c.RopeTheta, NormEps: c.NormEps, TiedEmbedding: c.TieEmbeddings, DType: m.DType,
		FileBytes: m.FileBytes, ShiftLogits: c.ShiftLogits,
		Special: map[string]int32{"mask": c.MaskID, "eos": c.EOSID, "pad": c.PadID, "bos": c.BOSID, "expand": c.ExpandID},
	}
	if m.Tokenizer != nil {
		info.TokenizerSize = m.Tokenizer.VocabSize()
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "dir\t%s\n", dir)
	fmt.Fprintf(tw, "family\t%s (model_type %q, %s)\n", c.Family, c.ModelType, cmp.Or(c.Description, "no architectures"))
	fmt.Fprintf(tw, "parameters\t%s (%d)\n", humanCount(float64(m.Params)), m.Params)
	fmt.Fprintf(tw, "shape\t%d layers, hidden %d, %d heads (%d kv, dim %d), intermediate %d\n",
		c.Layers, c.Hidden, c.Heads, c.KVHeads, c.HeadDim, c.Intermediate)
	tokInfo := "no tokenizer files"
	if m.Tokenizer != nil {
		tokInfo = fmt.Sprintf("tokenizer %d", m.Tokenizer.VocabSize())
	}
	fmt.Fprintf(tw, "vocab\t%d (%s)\n", c.Vocab, tokInfo)
	fmt.Fprintf(tw, "dtype\t%s\n", m.DType)
	fmt.Fprintf(tw, "files\t%s\n", humanBytes(m.FileBytes))
	fmt.Fprintf(tw, "positions\t%d, rope theta %g, norm eps %g\n", c.MaxPositions, c.RopeTheta, c.NormEps)
	fmt.Fprintf(tw, "embeddings\ttied %v\n", c.TieEmbeddings)
	fmt.Fprintf(tw, "shift_logits\t%v\n", c.ShiftLogits)
	var sp []string
	for _, s := range []struct {
		name string
		id   int32
	}{{"mask", c.MaskID}, {"eos", c.EOSID}, {"pad", c.PadID}, {"bos", c.BOSID}, {"expand", c.ExpandID}} {
		sp = append(sp, s.name+" "+tokenLabel(m, s.id))
	}
	fmt.Fprintf(tw, "special\t%s\n", strings.Join(sp, ", "))
	return tw.Flush()
}

func tokenLabel(m *model.Model, id int32) string {
	if id < 0 {
		return "-"
	}
	if m.Tokenizer == nil {
		return strconv.Itoa(int(id))
	}
	return fmt.Sprintf("%d %q", id, m.Tokenizer.TokenBytes(id))
}

// forwardOutput is what `diffill model forward` prints.
type forwardOutput struct {
	ShiftLogits bool          `json:"shift_logits"`
	Positions   []forwardStep `json:"positions"`
}

type forwardStep struct {
	Pos  int          `json:"pos"`
	ID   int32        `json:"id"`
	Text *string      `json:"text,omitempty"`
	Top  []forwardTop `json:"top"`
}

type forwardTop struct {
	ID    int32   `json:"id"`
	Logit float32 `json:"logit"`
	Text  *string `json:"text,omitempty"`
}

func runModelForward(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diffill model forward", flag.ContinueOnError)
	text := fs.String("text", "", "input text (special tokens such as <|mask|> allowed)")
	idList := fs.String("ids", "", "input token ids, comma-separated")
	top := fs.Int("top", 5, "logits to print per position")
	dir, err := parseModelFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if (*text == "") == (*idList == "") {
		fmt.Fprintln(stderr, "diffill model forward: give --text or --ids")
		return errUsage
	}
	if *top < 1 {
		fmt.Fprintln(stderr, "diffill model forward: --top must be at least 1")
		return errUsage
	}
	m, err := model.Load(dir)
	if err != nil {
		return err
	}
	defer m.Close()

	var ids []int32
	if *text != "" {
		if m.Tokenizer == nil {
			return fmt.Errorf("%s has no tokenizer.json or vocab.json: use --ids", dir)
		}
		ids = m.Tokenizer.Encode(*text)
		if len(ids) == 0 {
			return errors.New("--text encodes to no tokens")
		}
	} else {
		for _, f := range strings.Split(*idList, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
			if err != nil {
				return fmt.Errorf("--ids: %q is not a token id", f)
			}
			ids = append(ids, int32(v))
		}
	}
	logits, err := m.Forward(ctx, &model.Batch{Tokens: ids})
	if err != nil {
		return err
	}
	data := logits.Data().([]float32)
	V := m.Config.Vocab
	k := min(*top, V)
	out := forwardOutput{ShiftLogits: m.Config.ShiftLogits}
	order := make([]int32, V)
	for p, id := range ids {
		row := data[p*V : (p+1)*V]
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortStableFunc(order, func(a, b int32) int { return cmp.Compare(row[b], row[a]) })
		st := forwardStep{Pos: p, ID: id, Text: tokenText(m, id)}
		for _, t := range order[:k] {
			st.Top = append(st.Top, forwardTop{ID: t, Logit: row[t], Text: tokenText(m, t)})
		}
		out.Positions = append(out.Positions, st)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep <|mask|> readable
	if err := enc.Encode(out); err != nil {
		return err
	}
	// One position per line: readable, and still one JSON value.
	_, err = io.WriteString(stdout, strings.ReplaceAll(b.String(), `},{"pos"`, "},\n{\"pos\""))
	return err
}

func tokenText(m *model.Model, id int32) *string {
	if m.Tokenizer == nil {
		return nil
	}
	s := string(m.Tokenizer.TokenBytes(id))
	return &s
}

func humanCount(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
