package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/lsp"
	"github.com/diffill/diffill/lsp/fake"
	"github.com/diffill/diffill/lsp/settings"
	"github.com/diffill/diffill/model/builtin"
)

// benchLSP measures the language server as an editor meets it: the time
// from start to initialize answered and to the first completion (model load
// included), the round trip of completion and inline completion requests
// typed one keystroke apart (p50/p95), the resident memory while serving,
// and a burst of 1,000 completions each replacing the one before (what fast
// typing does), with the latency of the last and the heap and goroutines
// before and after. binary is the diffill executable to run `serve` from,
// as an editor does; "" serves in this process over a pipe. modelDir is the
// checkpoint the server uses (sent as the diffill.model setting); "" is the
// built-in model.
func benchLSP(ctx context.Context, w io.Writer, binary, modelDir string) error {
	where := "in-process over a pipe"
	if binary != "" {
		where = binary + " serve"
	}
	fmt.Fprintf(w, "== lsp (%s, %s, %d CPUs)\n", where, modelOrBuiltin(modelDir)+" model", runtime.NumCPU())

	start := time.Now()
	c, stop, err := startBenchServer(ctx, binary)
	if err != nil {
		return err
	}
	defer stop()

	// Debounce off: the figures are the server's own time. (The default
	// adaptive debounce adds at most its setting, 75 ms, while the user is
	// typing fast, and nothing after a pause.)
	opts := map[string]any{"debounce": 0}
	if modelDir != "" {
		opts["model"] = modelDir
	}
	init := fake.InitOptions{InitializationOptions: map[string]any{"diffill": opts}}
	if _, err := c.Initialize(ctx, init); err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	tInit := time.Since(start)

	uri := protocol.DocumentURI("file:///bench/sample.go")
	text := benchSource()
	if err := c.Open(uri, "go", text); err != nil {
		return err
	}
	// The first completion, in a partly typed line.
	lines := strings.Split(text, "\n")
	if _, err := benchAt(ctx, c, uri, benchCuts(lines)[0], func(p protocol.Position) error {
		return benchComplete(ctx, c, protocol.MethodTextDocumentCompletion, uri, p)
	}); err != nil {
		return fmt.Errorf("first completion: %w", err)
	}
	tFirst := time.Since(start)
	fmt.Fprintf(w, "initialize answered        %8.1f ms after start\n", lspMS(tInit))
	fmt.Fprintf(w, "first completion           %8.1f ms after start (model load included)\n", lspMS(tFirst))

	// Round trips: at each point the user has typed part of a line (the
	// rest of the line is cut), and asks; then the line is restored. Each
	// request is a fresh context, so the model runs (no cache hit).
	const rounds = 30
	for _, method := range []string{protocol.MethodTextDocumentCompletion, "textDocument/inlineCompletion"} {
		var lat []time.Duration
		for i, cp := range benchCuts(lines) {
			if i == rounds {
				break
			}
			d, err := benchAt(ctx, c, uri, cp, func(p protocol.Position) error {
				return benchComplete(ctx, c, method, uri, p)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", method, err)
			}
			lat = append(lat, d)
		}
		name := "completion round trip"
		if method != protocol.MethodTextDocumentCompletion {
			name = "inline completion"
		}
		fmt.Fprintf(w, "%-26s p50 %6.1f ms   p95 %6.1f ms   (%d requests, each in a partly typed line)\n", name, lspPct(lat, 50), lspPct(lat, 95), len(lat))
	}

	// Typing the characters of a shown completion is answered from the
	// cache.
	var cached []time.Duration
	st0, err := benchStats(ctx, c)
	if err != nil {
		return err
	}
	for i, cp := range benchCuts(lines) {
		if i == 10 {
			break // the model suggests little to type here
		}
		var lat []time.Duration
		if _, err := benchAt(ctx, c, uri, cp, func(p protocol.Position) (err error) {
			lat, err = benchCached(ctx, c, uri, p)
			return err
		}); err != nil {
			return err
		}
		if cached = append(cached, lat...); len(cached) >= 20 {
			break
		}
	}
	st1, err := benchStats(ctx, c)
	if err != nil {
		return err
	}
	if len(cached) > 0 {
		fmt.Fprintf(w, "%-26s p50 %6.2f ms   p95 %6.2f ms   (%d keystrokes, %d answered from the cache)\n", "typing a shown completion",
			lspPct(cached, 50), lspPct(cached, 95), len(cached), st1.CompletionCached-st0.CompletionCached)
	} else {
		fmt.Fprintf(w, "typing a shown completion  (the model suggested nothing to type)\n")
	}

	before, err := benchStats(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "RSS while serving          %8.1f MB (%d-byte document open)\n", float64(before.RSSBytes)/(1<<20), before.OpenBytes)

	// The burst: 1,000 completions, each after a keystroke, none waited
	// for before the next is sent; each replaces the one before.
	const burst = 1000
	p := benchCuts(lines)[2].at
	pending := make([]*fake.Pending, 0, burst)
	t0 := time.Now()
	for i := 0; i < burst; i++ {
		if err := c.Type(uri, p, "x"); err != nil {
			return err
		}
		p.Character++
		pr, err := c.Start(protocol.MethodTextDocumentCompletion, lspCompletionParams(uri, p))
		if err != nil {
			return err
		}
		pending = append(pending, pr)
	}
	sent := time.Since(t0)
	var answered, cancelled, failed int
	var lastLat time.Duration
	for i, pr := range pending {
		err := pr.Wait(ctx, nil)
		switch code := fake.Code(err); {
		case err == nil:
			answered++
		case code == -32800 || code == -32801:
			cancelled++
		default:
			failed++
			if failed == 1 {
				fmt.Fprintf(w, "  burst request %d: %v\n", i, err)
			}
		}
		if i == len(pending)-1 {
			lastLat = time.Since(pr.Sent)
		}
	}
	total := time.Since(t0)
	// Let cancelled work drain, then look again.
	var after *lsp.Stats
	for deadline := time.Now().Add(5 * time.Second); ; {
		if after, err = benchStats(ctx, c); err != nil {
			return err
		}
		if after.PendingRequests == 0 && after.Goroutines <= before.Goroutines || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(w, "burst of %d completions, each replacing the last (sent in %.0f ms):\n", burst, lspMS(sent))
	fmt.Fprintf(w, "  %d cancelled, %d answered, %d failed; all answered after %.0f ms; the last answered %.1f ms after it was sent\n",
		cancelled, answered, failed, lspMS(total), lspMS(lastLat))
	fmt.Fprintf(w, "  the model started %d times for the %d requests\n", after.CompletionRuns-before.CompletionRuns, burst)
	fmt.Fprintf(w, "  heap in use %.1f MB before, %.1f MB after; goroutines %d before, %d after; RSS %.1f MB after\n",
		float64(before.HeapInuseBytes)/(1<<20), float64(after.HeapInuseBytes)/(1<<20), before.Goroutines, after.Goroutines, float64(after.RSSBytes)/(1<<20))

	if err := benchModelSwitch(ctx, w, c, uri, benchCuts(lines)[0].at, modelDir); err != nil {
		return fmt.Errorf("model switching: %w", err)
	}
	return c.Shutdown(ctx)
}

// benchModelSwitch is a user trying six models and going back to the first:
// six copies of the built-in model's files, each set as diffill.model with
// a completion, then the starting model again. It reports the resident
// memory before, at the peak and after; models no session uses must be
// unloaded.
func benchModelSwitch(ctx context.Context, w io.Writer, c *fake.Client, uri protocol.DocumentURI, at protocol.Position, modelDir string) error {
	tmp, err := os.MkdirTemp("", "diffill-bench-models-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var dirs []string
	for i := 0; i < 6; i++ {
		d := fmt.Sprintf("%s/m%d", tmp, i)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		for name, b := range builtin.Files() {
			if err := os.WriteFile(d+"/"+name, b, 0o644); err != nil {
				return err
			}
		}
		dirs = append(dirs, d)
	}
	set := func(dir string) error {
		err := c.Notify(protocol.MethodWorkspaceDidChangeConfiguration, map[string]any{"settings": map[string]any{"diffill": map[string]any{"model": dir}}})
		if err != nil {
			return err
		}
		return benchComplete(ctx, c, protocol.MethodTextDocumentCompletion, uri, at)
	}
	settle := func() (*lsp.Stats, error) {
		time.Sleep(500 * time.Millisecond) // handles close asynchronously; memory goes back after
		return benchStats(ctx, c)
	}
	start, err := settle()
	if err != nil {
		return err
	}
	peak := start.RSSBytes
	for _, d := range dirs {
		if err := set(d); err != nil {
			return err
		}
		st, err := benchStats(ctx, c)
		if err != nil {
			return err
		}
		peak = max(peak, st.RSSBytes)
	}
	if err := set(modelDir); err != nil {
		return err
	}
	end, err := settle()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "switching among 6 models (%.1f MB of weights each) and back: RSS %.1f MB before, %.1f MB at the peak, %.1f MB after (%+.0f%%)\n",
		float64(len(builtin.Files()["model.safetensors"]))/(1<<20), float64(start.RSSBytes)/(1<<20), float64(peak)/(1<<20), float64(end.RSSBytes)/(1<<20),
		100*(float64(end.RSSBytes)/float64(start.RSSBytes)-1))
	return nil
}

// startBenchServer starts `binary serve` (or an in-process server) and a
// client for it.
func startBenchServer(ctx context.Context, binary string) (*fake.Client, func(), error) {
	if binary != "" {
		cmd := exec.CommandContext(ctx, binary, "serve", "--log-level", "warn")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, nil, fmt.Errorf("starting %s serve: %w", binary, err)
		}
		c := fake.New(lsp.NewConn(stdout, stdin))
		return c, func() {
			c.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}, nil
	}
	defaults := settings.Default()
	engines := newEngineCache(nil)
	srv := lsp.NewServer(engines.load, zap.NewNop(), lsp.Options{Defaults: &defaults, Version: buildVersion()})
	sconn, cconn := net.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, sconn) }()
	c := fake.New(cconn)
	return c, func() {
		c.Close()
		<-errc
	}, nil
}

func benchStats(ctx context.Context, c *fake.Client) (*lsp.Stats, error) {
	var st lsp.Stats
	if err := c.Call(ctx, lsp.MethodStats, nil, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", lsp.MethodStats, err)
	}
	return &st, nil
}

func lspCompletionParams(uri protocol.DocumentURI, p protocol.Position) map[string]any {
	return map[string]any{"textDocument": map[string]any{"uri": uri}, "position": p, "context": map[string]any{"triggerKind": 1}}
}

// benchComplete sends one completion or inline completion and checks it
// was answered.
func benchComplete(ctx context.Context, c *fake.Client, method string, uri protocol.DocumentURI, p protocol.Position) error {
	return c.Call(ctx, method, lspCompletionParams(uri, p), nil)
}

// benchCached shows an inline completion at p, then types its characters
// one by one, timing the request after each.
func benchCached(ctx context.Context, c *fake.Client, uri protocol.DocumentURI, p protocol.Position) ([]time.Duration, error) {
	var list struct {
		Items []struct {
			InsertText string `json:"insertText"`
		} `json:"items"`
	}
	if err := c.Call(ctx, "textDocument/inlineCompletion", lspCompletionParams(uri, p), &list); err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	var lat []time.Duration
	for _, r := range list.Items[0].InsertText {
		if r == '\n' || r == '\r' || len(lat) == 20 {
			break
		}
		s := string(r)
		if err := c.Type(uri, p, s); err != nil {
			return nil, err
		}
		p.Character += uint32(utf16Units(s))
		t0 := time.Now()
		if err := c.Call(ctx, "textDocument/inlineCompletion", lspCompletionParams(uri, p), nil); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

func utf16Units(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// benchCut is a point in a line of a function body where the user has
// typed up to, and what the rest of that line was.
type benchCut struct {
	at   protocol.Position
	rest string
}

// benchCuts are points in the lines of function bodies, after the last
// "." or "(" in the first two thirds of the line (or in its middle).
func benchCuts(lines []string) []benchCut {
	var cs []benchCut
	for i, l := range lines {
		if !strings.HasPrefix(l, "\t") || len(strings.TrimSpace(l)) < 12 || strings.HasPrefix(strings.TrimSpace(l), "//") {
			continue
		}
		cut := strings.LastIndexAny(l[:len(l)*2/3], ".(") + 1
		if cut <= 1 {
			cut = len(l) / 2
		}
		cs = append(cs, benchCut{at: protocol.Position{Line: uint32(i), Character: uint32(utf16Units(l[:cut]))}, rest: l[cut:]})
	}
	return cs
}

// benchAt cuts the line at cp, times f at the cut, and restores the line.
func benchAt(ctx context.Context, c *fake.Client, uri protocol.DocumentURI, cp benchCut, f func(protocol.Position) error) (time.Duration, error) {
	end := protocol.Position{Line: cp.at.Line, Character: cp.at.Character + uint32(utf16Units(cp.rest))}
	if err := c.EditText(uri, []protocol.TextEdit{{Range: protocol.Range{Start: cp.at, End: end}}}); err != nil {
		return 0, err
	}
	t0 := time.Now()
	err := f(cp.at)
	d := time.Since(t0)
	// Restore whatever is now after the cut on that line.
	line := strings.Split(c.Doc(uri).Text(), "\n")[cp.at.Line]
	now := protocol.Position{Line: cp.at.Line, Character: uint32(utf16Units(line))}
	if rerr := c.EditText(uri, []protocol.TextEdit{{Range: protocol.Range{Start: cp.at, End: now}, NewText: cp.rest}}); rerr != nil && err == nil {
		err = rerr
	}
	return d, err
}

// benchSource is the document the bench edits: ordinary Go, about 200
// lines.
func benchSource() string {
	var b strings.Builder
	b.WriteString("package sample\n\nimport (\n\t\"errors\"\n\t\"fmt\"\n\t\"sort\"\n\t\"strings\"\n)\n\n")
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, `// Record%[1]d is one row of table %[1]d.
type Record%[1]d struct {
	Name  string
	Count int
}

// Parse%[1]d reads "name=count" pairs separated by commas.
func Parse%[1]d(s string) ([]Record%[1]d, error) {
	var out []Record%[1]d
	for _, field := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(field, "=")
		if !ok {
			return nil, errors.New("missing =")
		}
		var n int
		if _, err := fmt.Sscan(value, &n); err != nil {
			return nil, fmt.Errorf("%%s: %%w", name, err)
		}
		out = append(out, Record%[1]d{Name: name, Count: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out, nil
}

`, i)
	}
	return b.String()
}

func lspMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// lspPct is the q-th percentile of d, in milliseconds.
func lspPct(d []time.Duration, q int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*q + 99) / 100
	return lspMS(s[min(max(i-1, 0), len(s)-1)])
}
