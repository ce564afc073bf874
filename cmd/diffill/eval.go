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
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/infill/gocheck"
	"github.com/diffill/diffill/infill/workspace"
	"github.com/diffill/diffill/model"
)

// evalCase is one line of a cases file. Kind ("line", "block", ...) and
// whether the middle occurs verbatim in the training files are optional.
type evalCase struct {
	Prefix  string `json:"prefix"`
	Suffix  string `json:"suffix"`
	Middle  string `json:"middle"`
	Kind    string `json:"kind"`
	Seen    *bool  `json:"seen"`
	InTrain *bool  `json:"in_train"`
	// Path is the absolute path of the file prefix+suffix is, for the
	// workspace context; Module groups the figures per module.
	Path   string `json:"path,omitempty"`
	Module string `json:"module,omitempty"`
}

func (c *evalCase) seen() string {
	switch {
	case c.Seen != nil && *c.Seen, c.InTrain != nil && *c.InTrain:
		return "seen"
	case c.Seen != nil, c.InTrain != nil:
		return "unseen"
	}
	return ""
}

func (c *evalCase) kind() string {
	if c.Kind != "" {
		return c.Kind
	}
	if strings.Contains(strings.TrimRight(c.Middle, "\n"), "\n") {
		return "multi"
	}
	return "single"
}

// evalConfig is one way of running the engine that eval measures.
type evalConfig struct {
	name   string
	cache  bool
	length string // Params.Length, or "oracle": fixed at the true token count
	// context is the workspace context each case with a path gets (nil:
	// none).
	context *workspace.Config
	// copy is the copy prior's corpus: 0 none, copyDoc the document
	// around the cursor, copyPackage that and the package's snippets.
	copy int
	// goaware: the answer is gocheck.Suggest's best (decodes and copied
	// lines, checked by Go's parser and type checker).
	goaware    bool
	goDecodes  int
	goFeatures string // file of candidates' features, or ""
}

const (
	copyDoc = 1 + iota
	copyPackage
)

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diffill eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: diffill eval --cases FILE.jsonl [flags]
       diffill eval --workspace DIR [--workspace DIR2 ...] [--cases N] [--seed S] [flags]

Fills the middle of each case ({"prefix","suffix","middle","kind"?,"seen"?,
"path"?}) and prints exact match and edit similarity per kind and per
seen/unseen, next to the trivial baselines (empty answer, copy the previous
line), and latency percentiles.

With --workspace, eval cuts the cases itself from the Go files of each
module root DIR (not generated, vendored, testdata or huge files; _test.go
files only with --tests): --cases N of each kind in all (default 60), split
evenly between the workspaces, the same for the same --seed. Kinds: line (a
whole line, asked for at its indentation), cursor (the rest of a line after
a typed prefix cut at a token boundary in its first three quarters), block
(3 lines from the first one's indentation). Baselines: the empty answer and
copy-line (the nearest line of the file that starts with what was typed on
the cursor's line: its rest). Figures per kind and per module.

Flags:
`)
		fs.PrintDefaults()
	}
	p := decodeFlags(fs)
	cases := fs.String("cases", "", "JSONL file of cases; with --workspace, the number of cases of each kind to cut")
	var workspaces stringList
	fs.Var(&workspaces, "workspace", "cut cases from the Go files of this module root (repeatable)")
	tests := fs.Bool("tests", false, "with --workspace: also cut cases from _test.go files")
	contexts := fs.String("snippets", "", "workspace context runs, comma-separated, each none, all, or pieces joined by + (recv, decls, api, chunks), optionally @BYTES of budget (e.g. none,all,chunks@800); default none,all with --workspace or cases with paths, else none")
	contextBytes := fs.Int("snippet-bytes", workspace.SnippetBytes, "byte budget of the --snippets runs without @BYTES")
	modelDir := fs.String("model", "", "checkpoint `directory` (default: the built-in model)")
	device := fs.String("device", "auto", "`device` to run the model on: auto (a GPU if there is one), cpu or cuda")
	limit := fs.Int("limit", 0, "evaluate only the first N cases (0: all)")
	mode := fs.String("mode", "", "request mode: infill (at a point, the model picks the length), complete (as the editor asks at the cursor), range (infill over the true middle's range: its length sizes the masks), or auto (per kind as a user asks: cursor complete, line complete on one line, block infill); default infill, auto with --workspace")
	compare := fs.String("compare", "", "also run variants: cache (with and without the cache), length (auto, fixed, oracle, multi)")
	noCache := fs.Bool("no-cache", false, "recompute the whole canvas at every step")
	warm := fs.Bool("warm", false, "before each case, run it one keystroke earlier (the prefix's last character not yet typed), so the case reuses that document's cache")
	jsonOut := fs.Bool("json", false, "print the results as JSON")
	goAware := fs.Bool("go", false, "also run Go-aware decoding (several candidates checked by Go's parser and type checker, best first) and report, for every run, the share of answers that parse and type-check in place, and what ghost text would show at each confidence threshold")
	goFeatures := fs.String("go-features", "", "with --go: write every candidate of every case (source, the model's confidence, the checks' verdicts, exact or not) as JSON lines to this file, for calibrating the confidence")
	goDecodes := fs.Int("go-decodes", 3, "with --go: the decodes (at different lengths) each case checks and ranks")
	casesOut := fs.String("write-cases", "", "with --workspace: also write the cases cut, as `FILE`.jsonl for --cases (to run them with another build, side by side)")
	answersOut := fs.String("answers", "", "write each case's answers (one JSON line per case: middle and each run's answer) to this file")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *cases == "" && len(workspaces) == 0 {
		fmt.Fprintln(stderr, "diffill eval: no --cases or --workspace given: pass a JSONL file of cases, such as model/train/testdata/heldout.jsonl, or a module root.\nRun 'diffill eval -h' for its flags.")
		return errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "diffill eval: unexpected argument %q (the cases come with --cases FILE or --workspace DIR).\nRun 'diffill eval -h' for its flags.\n", fs.Arg(0))
		return errUsage
	}
	if err := checkModelFlags(*modelDir, *device); err != nil {
		return err
	}
	if *mode == "" {
		*mode = "infill"
		if len(workspaces) > 0 {
			*mode = "auto"
		}
	}
	if *mode != "infill" && *mode != "complete" && *mode != "range" && *mode != "auto" {
		return fmt.Errorf("--mode %q: want infill, complete, range or auto", *mode)
	}
	var cs []*evalCase
	var err error
	if len(workspaces) > 0 {
		n := 60
		if *cases != "" {
			if n, err = strconv.Atoi(*cases); err != nil || n <= 0 {
				return fmt.Errorf("--cases %q: with --workspace, want the number of cases of each kind", *cases)
			}
		}
		cs, err = cutWorkspaceCases(workspaces, cutOptions{perKind: n, seed: p.Seed, tests: *tests})
		if err == nil && *limit > 0 && *limit < len(cs) {
			cs = cs[:*limit]
		}
		if err == nil && len(cs) == 0 {
			err = errors.New("--workspace: no cases could be cut")
		}
		fmt.Fprintf(stderr, "eval: %d cases from %d workspaces (seed %d, _test.go files %s)\n", len(cs), len(workspaces), p.Seed, map[bool]string{true: "included", false: "skipped"}[*tests])
	} else {
		cs, err = readCases(*cases, *limit)
	}
	if err != nil {
		return err
	}
	if *casesOut != "" {
		if err := writeCases(*casesOut, cs); err != nil {
			return err
		}
	}
	configs := []evalConfig{{name: "model", cache: !*noCache, length: p.Length}}
	if *contexts == "" && hasPaths(cs) {
		*contexts = "none,all"
	}
	if *contexts != "" {
		if *compare != "" {
			return errors.New("--snippets and --compare: give one of them")
		}
		if configs, err = contextConfigs(*contexts, *contextBytes, !*noCache, p.Length); err != nil {
			return err
		}
	}
	switch *compare {
	case "":
	case "cache":
		configs = []evalConfig{{name: "cache", cache: true, length: p.Length}, {name: "no-cache", cache: false, length: p.Length}}
	case "length":
		configs = []evalConfig{
			{name: "adaptive", cache: !*noCache, length: "auto"},
			{name: "fixed", cache: !*noCache, length: "fixed"},
			{name: "oracle", cache: !*noCache, length: "oracle"},
			{name: "multi", cache: !*noCache, length: "multi"},
		}
	default:
		return fmt.Errorf("--compare %q: want cache or length", *compare)
	}

	if *goAware {
		g := configs[0]
		g.name, g.goaware, g.goDecodes, g.goFeatures = "go", true, *goDecodes, *goFeatures
		configs = append(configs, g)
	}
	m, err := loadCLIModel(*modelDir, *device, stderr)
	if err != nil {
		return err
	}
	defer m.Close()

	sess := workspace.NewSession(workspace.Options{})
	defer sess.Close()
	rep := &evalReport{Cases: len(cs), byRow: len(workspaces) > 0}
	rep.Baselines = append(rep.Baselines, scoreAnswers("empty", cs, func(int) string { return "" }, nil))
	if len(workspaces) > 0 {
		rep.Baselines = append(rep.Baselines, scoreAnswers("copy-line", cs, func(i int) string { return copyLine(cs[i]) }, nil))
	} else {
		rep.Baselines = append(rep.Baselines, scoreAnswers("copy-prev-line", cs, func(i int) string { return copyPrevLine(cs[i]) }, nil))
	}
	for _, cfg := range configs {
		r, err := evalRun(ctx, m, sess, cs, cfg, *p, *mode, *warm, stderr)
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, r)
	}
	if len(rep.Runs) == 2 {
		rep.Paired = pair(rep.Runs[0], rep.Runs[1])
	}
	if *goAware {
		rep.Checks = checkRuns(ctx, sess, cs, rep.Runs)
	}
	if *answersOut != "" {
		if err := writeAnswers(*answersOut, cs, rep.Runs); err != nil {
			return err
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.print(stdout)
	return nil
}

// writeAnswers writes one JSON line per case: its kind, seen, middle and
// each run's answer, for looking at what changed between runs.
func writeAnswers(path string, cs []*evalCase, runs []*evalScore) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--answers: %w", err)
	}
	enc := json.NewEncoder(f)
	enc.SetEscapeHTML(false)
	for i, c := range cs {
		line := map[string]any{"case": i + 1, "kind": c.kind(), "seen": c.seen(), "middle": c.Middle}
		for _, r := range runs {
			line[r.Name] = r.answers[i]
		}
		if err := enc.Encode(line); err != nil {
			f.Close()
			return fmt.Errorf("--answers: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--answers: %w", err)
	}
	return nil
}

// writeCases writes cases as readCases reads them.
func writeCases(path string, cs []*evalCase) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--write-cases: %w", err)
	}
	enc := json.NewEncoder(f)
	enc.SetEscapeHTML(false)
	for _, c := range cs {
		if err := enc.Encode(c); err != nil {
			f.Close()
			return fmt.Errorf("--write-cases: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--write-cases: %w", err)
	}
	return nil
}

func readCases(path string, limit int) ([]*evalCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var cs []*evalCase
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		c := &evalCase{}
		if err := json.Unmarshal(sc.Bytes(), c); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		cs = append(cs, c)
		if limit > 0 && len(cs) == limit {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	return cs, nil
}

// evalRun answers every case with one engine configuration.
func evalRun(ctx context.Context, m *model.Model, sess *workspace.Session, cs []*evalCase, cfg evalConfig, p infill.Params, mode string, warm bool, progress io.Writer) (*evalScore, error) {
	eng := infill.NewEngine(m, infill.WithCache(cfg.cache))
	lat := make([]time.Duration, len(cs))
	answers := make([]string, len(cs))
	confs := make([]float64, len(cs))
	sources := make([]string, len(cs))
	var feats *json.Encoder
	if cfg.goFeatures != "" {
		f, err := os.Create(cfg.goFeatures)
		if err != nil {
			return nil, fmt.Errorf("--go-features: %w", err)
		}
		defer f.Close()
		feats = json.NewEncoder(f)
	}
	start := time.Now()
	for i, c := range cs {
		q := p
		q.Length = cfg.length
		if cfg.length == "oracle" {
			q.Length = "fixed"
			q.MaxTokens = max(1, len(m.Tokenizer.EncodeOrdinary(c.Middle)))
		}
		at := len(c.Prefix)
		req := &infill.Request{
			Text:   c.Prefix + c.Suffix,
			Spans:  []infill.Span{{Start: at, End: at}},
			Mode:   infill.ModeInfill,
			Params: q,
		}
		switch {
		case cfg.length == "oracle":
		case mode == "auto":
			// As a user asks: ghost text for the rest of a line, one
			// line at its indentation, infill for a block.
			switch c.kind() {
			case "cursor":
				req.Mode = infill.ModeComplete
			case "line":
				req.Mode = infill.ModeComplete
				req.Params.SingleLine = true
			}
		case mode == "complete":
			req.Mode = infill.ModeComplete
		case mode == "range":
			req.Text = c.Prefix + c.Middle + c.Suffix
			req.Spans = []infill.Span{{Start: at, End: at + len(c.Middle)}}
		}
		if warm && at > 0 {
			// The same request one keystroke earlier: its cache is what
			// the timed request starts from.
			_, n := utf8.DecodeLastRuneInString(c.Prefix)
			prev := *req
			prev.Text = c.Prefix[:at-n] + c.Suffix
			prev.Spans = []infill.Span{{Start: at - n, End: at - n}}
			if _, err := eng.Run(ctx, &prev); err != nil {
				return nil, fmt.Errorf("case %d (one keystroke earlier): %w", i+1, err)
			}
		}
		var sel func() string
		if (cfg.context != nil || cfg.copy == copyPackage) && c.Path != "" {
			wc := workspace.DefaultConfig
			if cfg.context != nil {
				wc = *cfg.context
			}
			wc.Budget = max(wc.Budget, workspace.SnippetBytes)
			sel = caseContext(ctx, sess, c, req.Text, at, wc)
		}
		t0 := time.Now()
		snippets := ""
		if sel != nil {
			// Timed: choosing the snippets is in the request's path;
			// loading the package (waited for above) is not.
			snippets = sel()
			if cfg.context != nil {
				req.Prelude = snippets
			}
		}
		switch cfg.copy {
		case copyDoc:
			req.Corpus = workspace.Corpus(req.Text, at, "")
		case copyPackage:
			req.Corpus = workspace.Corpus(req.Text, at, snippets)
		}
		if cfg.goaware {
			d := caseDoc(ctx, sess, c, req.Text, at)
			t0 = time.Now()
			as, err := gocheck.Suggest(ctx, eng, req, d, gocheck.SuggestOptions{Decodes: cfg.goDecodes})
			lat[i] = time.Since(t0)
			if err != nil {
				return nil, fmt.Errorf("case %d: %w", i+1, err)
			}
			if len(as) > 0 {
				answers[i], confs[i], sources[i] = as[0].Text, as[0].Confidence, as[0].Source
			}
			if feats != nil {
				writeFeatures(feats, c, d, as)
			}
			if progress != nil && ((i+1)%10 == 0 || i+1 == len(cs)) {
				fmt.Fprintf(progress, "eval %s: %d/%d cases, %.0fs\n", cfg.name, i+1, len(cs), time.Since(start).Seconds())
			}
			continue
		}
		res, err := eng.Run(ctx, req)
		lat[i] = time.Since(t0)
		if err != nil {
			return nil, fmt.Errorf("case %d: %w", i+1, err)
		}
		answers[i] = res.Candidates[0].Edits[0].NewText
		confs[i] = res.Candidates[0].Confidence
		if progress != nil && ((i+1)%10 == 0 || i+1 == len(cs)) {
			fmt.Fprintf(progress, "eval %s: %d/%d cases, %.0fs\n", cfg.name, i+1, len(cs), time.Since(start).Seconds())
		}
	}
	sc := scoreAnswers(cfg.name, cs, func(i int) string { return answers[i] }, lat)
	sc.answers, sc.confs, sc.sources, sc.goaware = answers, confs, sources, cfg.goaware
	return sc, nil
}

// copyPrevLine is the "copy the previous line" baseline: the last complete
// line of the prefix, without its indentation when the prefix already
// indents the middle's line.
func copyPrevLine(c *evalCase) string {
	pre := c.Prefix
	cur := strings.LastIndexByte(pre, '\n')
	if cur < 0 {
		return ""
	}
	prevStart := strings.LastIndexByte(pre[:cur], '\n') + 1
	prev := pre[prevStart:cur]
	if strings.TrimSpace(pre[cur+1:]) == "" && pre[cur+1:] != "" {
		return strings.TrimLeft(prev, " \t")
	}
	return prev
}

// evalScore is the quality of one set of answers.
type evalScore struct {
	answers []string  // per case, for --answers
	exact   []bool    // per case: the answer is the middle
	confs   []float64 // per case: the answer's confidence
	sources []string  // per case, Go-aware runs: where the answer came from
	goaware bool

	Name   string                `json:"name"`
	Groups map[string]*groupStat `json:"groups"`
	P50MS  float64               `json:"p50_ms,omitempty"`
	P95MS  float64               `json:"p95_ms,omitempty"`
}

type groupStat struct {
	N     int     `json:"n"`
	EM    float64 `json:"exact_match"`
	ES    float64 `json:"edit_similarity"`
	P50MS float64 `json:"p50_ms,omitempty"`
}

type evalReport struct {
	byRow bool // print a row per group, a column per set of answers

	Cases     int          `json:"cases"`
	Baselines []*evalScore `json:"baselines"`
	Runs      []*evalScore `json:"runs"`
	// Paired compares two runs case by case, when there are two: with
	// a few dozen exact answers a difference of one case is several
	// percent, and the cases only one run gets right say more.
	Paired *pairedStat `json:"paired,omitempty"`
	// Checks are the Go checks of each run's answers (eval --go).
	Checks []*checkStat `json:"checks,omitempty"`
}

// pairedStat counts the cases exactly right in only one of two runs.
type pairedStat struct {
	OnlyFirst  int `json:"only_first"`
	OnlySecond int `json:"only_second"`
	Differ     int `json:"differ"` // cases whose answers differ at all
}

func pair(a, b *evalScore) *pairedStat {
	ps := &pairedStat{}
	for i := range a.exact {
		ra, rb := a.exact[i], b.exact[i]
		switch {
		case ra && !rb:
			ps.OnlyFirst++
		case rb && !ra:
			ps.OnlySecond++
		}
		if a.answers[i] != b.answers[i] {
			ps.Differ++
		}
	}
	return ps
}

// groupsOf names the groups a case counts in: all, its kind, and its kind
// crossed with seen/unseen when the case says.
func groupsOf(c *evalCase) []string {
	g := []string{"all", c.kind()}
	if s := c.seen(); s != "" {
		g = append(g, s, c.kind()+"/"+s)
	}
	if c.Module != "" {
		g = append(g, c.Module+" "+c.kind())
	}
	return g
}

func scoreAnswers(name string, cs []*evalCase, answer func(i int) string, lat []time.Duration) *evalScore {
	s := &evalScore{Name: name, Groups: map[string]*groupStat{}, exact: make([]bool, len(cs))}
	lats := map[string][]time.Duration{}
	for i, c := range cs {
		a, want := normalize(answer(i)), normalize(c.Middle)
		em := 0.0
		s.exact[i] = a == want
		if s.exact[i] {
			em = 1
		}
		es := editSimilarity(a, want)
		for _, g := range groupsOf(c) {
			st := s.Groups[g]
			if st == nil {
				st = &groupStat{}
				s.Groups[g] = st
			}
			st.N++
			st.EM += em
			st.ES += es
			if lat != nil {
				lats[g] = append(lats[g], lat[i])
			}
		}
	}
	for g, st := range s.Groups {
		st.EM /= float64(st.N)
		st.ES /= float64(st.N)
		if lat != nil {
			st.P50MS = percentile(lats[g], 0.5)
		}
	}
	if lat != nil {
		s.P50MS, s.P95MS = percentile(lat, 0.5), percentile(lat, 0.95)
	}
	return s
}

// normalize compares answers the way a user would: surrounding blank space
// and trailing blanks on each line do not count.
func normalize(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return strings.Join(lines, "\n")
}

// editSimilarity is 1 - Levenshtein distance / longer length, over runes.
func editSimilarity(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	if len(ra) == 0 && len(rb) == 0 {
		return 1
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return 1 - float64(prev[len(rb)])/float64(max(len(ra), len(rb)))
}

func percentile(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, int(q*float64(len(s))))
	return float64(s[i].Microseconds()) / 1000
}

// groups lists the groups of all, "all" first, then kinds (caseKinds'
// order first), then the rest by name.
func reportGroups(all []*evalScore) []string {
	var groups []string
	seen := map[string]bool{}
	for _, s := range all {
		for g := range s.Groups {
			if !seen[g] {
				seen[g] = true
				groups = append(groups, g)
			}
		}
	}
	rank := func(g string) int {
		if g == "all" {
			return 0
		}
		if i := slices.Index(caseKinds, g); i >= 0 {
			return 1 + i
		}
		return 1 + len(caseKinds)
	}
	sort.Slice(groups, func(i, j int) bool {
		if ri, rj := rank(groups[i]), rank(groups[j]); ri != rj {
			return ri < rj
		}
		return groups[i] < groups[j]
	})
	return groups
}

func (r *evalReport) print(w io.Writer) {
	all := append(slices.Clone(r.Baselines), r.Runs...)
	groups := reportGroups(all)
	if r.byRow {
		r.printRows(w, all, groups)
		return
	}
	fmt.Fprintf(w, "%d cases; exact match %% / edit similarity per group\n\n", r.Cases)
	fmt.Fprintf(w, "%-16s", "answers")
	for _, g := range groups {
		n := 0
		if st := all[0].Groups[g]; st != nil {
			n = st.N
		}
		fmt.Fprintf(w, " %18s", fmt.Sprintf("%s (%d)", g, n))
	}
	fmt.Fprintf(w, " %9s %9s\n", "p50 ms", "p95 ms")
	for _, s := range all {
		fmt.Fprintf(w, "%-16s", s.Name)
		for _, g := range groups {
			st := s.Groups[g]
			if st == nil {
				fmt.Fprintf(w, " %18s", "-")
				continue
			}
			fmt.Fprintf(w, " %18s", fmt.Sprintf("%5.1f%% / %.3f", 100*st.EM, st.ES))
		}
		if s.P50MS > 0 {
			fmt.Fprintf(w, " %9.1f %9.1f", s.P50MS, s.P95MS)
		}
		fmt.Fprintln(w)
	}
	if len(r.Runs) == 2 && r.Runs[0].Name == "cache" {
		c, n := r.Runs[0].Groups["all"].EM, r.Runs[1].Groups["all"].EM
		if n > 0 {
			fmt.Fprintf(w, "\ncache keeps %.1f%% of the uncached exact match\n", 100*c/n)
		}
	}
	r.printPaired(w)
	r.printChecks(w)
}

// printRows prints a row per group and a column per set of answers: there
// are more groups (kinds by modules) than sets.
func (r *evalReport) printRows(w io.Writer, all []*evalScore, groups []string) {
	fmt.Fprintf(w, "%d cases; exact match %% / edit similarity\n\n", r.Cases)
	width := len("group")
	for _, g := range groups {
		width = max(width, len(g))
	}
	fmt.Fprintf(w, "%-*s %5s", width, "group", "n")
	for _, s := range all {
		fmt.Fprintf(w, " %16s", s.Name)
	}
	fmt.Fprintln(w)
	for _, g := range groups {
		n := 0
		if st := all[0].Groups[g]; st != nil {
			n = st.N
		}
		fmt.Fprintf(w, "%-*s %5d", width, g, n)
		for _, s := range all {
			st := s.Groups[g]
			if st == nil {
				fmt.Fprintf(w, " %16s", "-")
				continue
			}
			fmt.Fprintf(w, " %16s", fmt.Sprintf("%5.1f%% / %.3f", 100*st.EM, st.ES))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-*s %5s", width, "p50 / p95 ms", "")
	for _, s := range all {
		if s.P50MS > 0 {
			fmt.Fprintf(w, " %16s", fmt.Sprintf("%.0f / %.0f", s.P50MS, s.P95MS))
		} else {
			fmt.Fprintf(w, " %16s", "-")
		}
	}
	fmt.Fprintln(w)
	r.printPaired(w)
	r.printChecks(w)
}

func (r *evalReport) printPaired(w io.Writer) {
	if ps := r.Paired; ps != nil {
		a, b := r.Runs[0].Name, r.Runs[1].Name
		fmt.Fprintf(w, "exactly right only with %s: %d cases, only with %s: %d; answers differ in %d of %d cases\n",
			a, ps.OnlyFirst, b, ps.OnlySecond, ps.Differ, r.Cases)
	}
}
