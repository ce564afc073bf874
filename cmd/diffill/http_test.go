package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/diffill/diffill/infill"
)

// newTestHTTP serves the tiny checkpoint over real loopback HTTP.
func newTestHTTP(t *testing.T, opts httpOptions) (*httpServer, *httptest.Server) {
	t.Helper()
	opts.Model = tinyCopies(t, 1)[0]
	s := newHTTPServer(newEngineCache(t.Logf), zap.NewNop(), opts)
	ts := httptest.NewServer(s.handler())
	t.Cleanup(func() { ts.Close(); s.close() })
	return s, ts
}

func post(t *testing.T, url, body string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, b)
	}
	return resp.StatusCode, m, resp.Header
}

// engineAnswer is what the engine itself writes at the cursor, to hold the
// protocols' answers to.
func engineAnswer(t *testing.T, s *httpServer, prelude, prefix, suffix string) string {
	t.Helper()
	eng, err := s.engine(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	text := prefix + suffix
	res, err := eng.Run(context.Background(), &infill.Request{
		Text: text, Spans: []infill.Span{{Start: len(prefix), End: len(prefix)}},
		Mode: infill.ModeComplete, Prelude: prelude,
		Params: infill.Params{TopK: 40, TopP: 0.99},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := infill.Apply(text, res.Candidates[0].Edits)
	return out[len(prefix) : len(out)-len(suffix)]
}

// The request bodies llama.vim (autoload/llama.vim, llama#fim and the ring
// warm-up) and llama.vscode send.
const (
	llamaVimBody    = `{"input_prefix": "package main\n\nfunc main() {\n\tx := ", "input_suffix": "\n}\n", "input_extra": [{"filename": "util.go", "text": "package main\n\nfunc helper() int { return 1 }\n"}], "prompt": "", "n_predict": 128, "stop": [], "n_indent": 1, "top_k": 40, "top_p": 0.99, "stream": false, "samplers": ["top_k", "top_p", "infill"], "cache_prompt": true, "t_max_prompt_ms": 500, "t_max_predict_ms": 10000, "response_fields": ["content", "timings/prompt_n", "timings/prompt_ms", "timings/prompt_per_token_ms", "timings/prompt_per_second", "timings/predicted_n", "timings/predicted_ms", "timings/predicted_per_token_ms", "timings/predicted_per_second", "truncated", "tokens_cached"]}`
	llamaVimRing    = `{"input_prefix": "", "input_suffix": "", "input_extra": [{"filename": "util.go", "text": "package main\n\nfunc helper() int { return 1 }\n"}], "prompt": "", "n_predict": 0, "temperature": 0.0, "stream": false, "samplers": [], "cache_prompt": true, "t_max_prompt_ms": 1, "t_max_predict_ms": 1, "response_fields": [""]}`
	llamaVSCodeBody = `{"input_prefix": "package main\n\nfunc main() {\n\tx := ", "input_suffix": "\n}\n", "input_extra": [{"filename": "util.go", "text": "package main\n\nfunc helper() int { return 1 }\n"}], "prompt": "", "n_predict": 128, "top_k": 40, "top_p": 0.99, "stream": false, "samplers": ["top_k", "top_p", "infill"], "cache_prompt": true, "t_max_prompt_ms": 30000, "t_max_predict_ms": 10000, "model": "qwen2-tiny"}`
)

func TestHTTPLlamaClients(t *testing.T) {
	s, ts := newTestHTTP(t, httpOptions{})
	prelude := prelude([]inputExtra{{Filename: "util.go", Text: "package main\n\nfunc helper() int { return 1 }\n"}})
	want := engineAnswer(t, s, prelude, "package main\n\nfunc main() {\n\tx := ", "\n}\n")
	want, _, _ = cutStops(want, nil, 1)

	code, m, _ := post(t, ts.URL+"/infill", llamaVimBody)
	if code != 200 {
		t.Fatalf("llama.vim: %d %v", code, m)
	}
	if m["content"] != want {
		t.Errorf("llama.vim content %q, the engine writes %q", m["content"], want)
	}
	// Only the response_fields, under their path names.
	for _, k := range []string{"timings/prompt_n", "timings/predicted_n", "truncated", "tokens_cached"} {
		if _, ok := m[k]; !ok {
			t.Errorf("llama.vim asked for %s; answer %v", k, m)
		}
	}
	if _, ok := m["stop_type"]; ok {
		t.Errorf("answer holds fields not asked for: %v", m)
	}
	if n, _ := m["timings/prompt_n"].(float64); n <= 0 {
		t.Errorf("timings/prompt_n = %v, want the prompt's tokens", m["timings/prompt_n"])
	}

	// The ring warm-up: no content, no error, an empty object.
	code, m, _ = post(t, ts.URL+"/infill", llamaVimRing)
	if code != 200 || len(m) != 0 {
		t.Errorf("ring warm-up: %d %v, want 200 {}", code, m)
	}

	code, m, _ = post(t, ts.URL+"/infill", llamaVSCodeBody)
	if code != 200 {
		t.Fatalf("llama.vscode: %d %v", code, m)
	}
	wantVSC := engineAnswer(t, s, prelude, "package main\n\nfunc main() {\n\tx := ", "\n}\n")
	if m["content"] != wantVSC || m["stop"] != true || m["stop_type"] == nil || m["timings"] == nil || m["tokens_evaluated"] == nil {
		t.Errorf("llama.vscode: %v, want content %q and llama.cpp's fields", m, wantVSC)
	}

	// Streaming: the chunks' content adds up to the answer, the last says stop.
	resp, err := http.Post(ts.URL+"/infill", "application/json", strings.NewReader(strings.Replace(llamaVSCodeBody, `"stream": false`, `"stream": true`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("stream Content-Type %q", ct)
	}
	var got strings.Builder
	var last map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		last = nil
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatalf("chunk %q: %v", line, err)
		}
		got.WriteString(last["content"].(string))
	}
	if got.String() != wantVSC || last == nil || last["stop"] != true {
		t.Errorf("stream: content %q, last chunk %v; want %q and stop", got.String(), last, wantVSC)
	}
}

func TestHTTPOpenAIAndFIM(t *testing.T) {
	s, ts := newTestHTTP(t, httpOptions{})
	prefix, suffix := "func add(a, b int) int {\n\treturn ", "\n}\n"
	want := engineAnswer(t, s, "", prefix, suffix)
	body, _ := json.Marshal(map[string]any{"model": "x", "prompt": prefix, "suffix": suffix, "max_tokens": 64, "top_k": 40, "top_p": 0.99})
	for _, route := range []string{"/v1/completions", "/v1/fim/completions"} {
		code, m, _ := post(t, ts.URL+route, string(body))
		if code != 200 {
			t.Fatalf("%s: %d %v", route, code, m)
		}
		ch := m["choices"].([]any)[0].(map[string]any)
		if ch["text"] != want || ch["finish_reason"] == nil {
			t.Errorf("%s: choice %v, want text %q", route, ch, want)
		}
		u := m["usage"].(map[string]any)
		if u["prompt_tokens"].(float64) <= 0 || u["total_tokens"].(float64) != u["prompt_tokens"].(float64)+u["completion_tokens"].(float64) {
			t.Errorf("%s: usage %v", route, u)
		}
		if route == "/v1/fim/completions" && ch["message"].(map[string]any)["content"] != want {
			t.Errorf("FIM message %v, want %q", ch["message"], want)
		}
	}
}

func TestHTTPDiffillExtras(t *testing.T) {
	_, ts := newTestHTTP(t, httpOptions{})
	code, m, _ := post(t, ts.URL+"/diffill/infill", `{"text": "a := ???\nb := ???\n", "mode": "fill-holes", "max_tokens": 4}`)
	if code != 200 {
		t.Fatalf("fill-holes: %d %v", code, m)
	}
	c := m["candidates"].([]any)[0].(map[string]any)
	if n := len(c["edits"].([]any)); n != 2 {
		t.Errorf("fill-holes: %d edits, want one per hole: %v", n, c)
	}
	if strings.Contains(c["text"].(string), "???") {
		t.Errorf("fill-holes left a hole: %q", c["text"])
	}
	// A rewrite streamed: step events, then the answer.
	resp, err := http.Post(ts.URL+"/diffill/infill", "application/json", strings.NewReader(`{"text": "x := a + b\n", "mode": "rewrite", "spans": [{"start": 0, "end": 10}], "strength": 0.5, "stream": true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"step":1`) || !strings.Contains(string(b), `"mode":"rewrite"`) {
		t.Errorf("rewrite stream lacks steps or the answer:\n%s", b)
	}
}

func TestHTTPHostileInput(t *testing.T) {
	_, ts := newTestHTTP(t, httpOptions{MaxBody: 1 << 10})
	for _, tc := range []struct {
		route, body string
		code        int
		says        string
	}{
		{"/infill", `{"input_prefix": "x"`, 400, "malformed JSON"},
		{"/infill", `{"input_prefix": }`, 400, "malformed JSON"},
		{"/infill", ``, 400, "empty body"},
		{"/infill", `{"n_predict": "many"}`, 400, `"n_predict"`},
		{"/infill", `{"input_extra": "file"}`, 400, `"input_extra"`},
		{"/infill", `{"stop": 3}`, 400, `"stop"`},
		{"/infill", `{"top_p": 7}`, 400, "top_p"},
		{"/infill", `{"input_prefix": "` + strings.Repeat("x", 2<<10) + `"}`, 413, "--http-max-body"},
		{"/v1/completions", `{"prompt": ["a", "b"]}`, 400, `"prompt"`},
		{"/diffill/infill", `{"text": "x", "mode": "dream"}`, 400, "want complete, infill"},
		{"/diffill/infill", `{"text": "x", "mode": "infill", "spans": [{"start": 0, "end": 9}]}`, 400, "span [0, 9)"},
		{"/diffill/infill", `{"text": "abc", "mode": "infill", "spans": [{"start": 0, "end": 2}, {"start": 1, "end": 3}]}`, 400, "overlap"},
		{"/diffill/infill", `{"text": "abc", "mode": "fill-holes"}`, 400, "no hole"},
		{"/nowhere", `{}`, 404, "POST /infill"},
	} {
		code, m, _ := post(t, ts.URL+tc.route, tc.body)
		msg, _ := m["error"].(map[string]any)["message"].(string)
		if code != tc.code || !strings.Contains(msg, tc.says) {
			t.Errorf("%s %.40q: %d %q, want %d saying %q", tc.route, tc.body, code, msg, tc.code, tc.says)
		}
	}
	// The server still answers.
	if code, m, _ := post(t, ts.URL+"/infill", `{"input_prefix": "x := "}`); code != 200 {
		t.Errorf("after hostile input: %d %v", code, m)
	}
}

// waitQueued waits until n requests wait for the engine.
func waitQueued(t *testing.T, s *httpServer, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.metrics.queued.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue depth %d, want %d", s.metrics.queued.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHTTPQueueFullAndDisconnect(t *testing.T) {
	s, ts := newTestHTTP(t, httpOptions{Queue: 1})
	// The test holds the engine, as a long request would.
	s.running <- struct{}{}
	results := make(chan int, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 2; i++ {
		c := ctx
		if i == 1 {
			c = context.Background()
		}
		go func() {
			req, _ := http.NewRequestWithContext(c, "POST", ts.URL+"/infill", strings.NewReader(`{"input_prefix": "x := "}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- -1
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
		waitQueued(t, s, int64(i+1))
	}
	// Two admitted (queue 1 + the running slot): the third is refused now.
	code, m, h := post(t, ts.URL+"/infill", `{"input_prefix": "x := "}`)
	if code != 503 || h.Get("Retry-After") == "" {
		t.Errorf("queue full: %d %v Retry-After %q, want 503 with Retry-After", code, m, h.Get("Retry-After"))
	}
	// The first client leaves: its request leaves the queue.
	cancel()
	if r := <-results; r != -1 {
		t.Errorf("cancelled client got %d", r)
	}
	waitQueued(t, s, 1)
	<-s.running
	if r := <-results; r != 200 {
		t.Errorf("queued request: %d, want 200 once the engine is free", r)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`diffill_http_requests_total{route="/infill",code="503"} 1`, `code="499"} 1`, `code="200"} 1`, "diffill_http_queue_depth 0", "diffill_http_request_duration_seconds_bucket", "diffill_tokens_per_second"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
}

func TestHTTPToken(t *testing.T) {
	dir := t.TempDir()
	// Beyond loopback without a token: refused.
	if _, _, err := listenHTTP("0.0.0.0:0", "", zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--http-token-file") {
		t.Errorf("non-loopback without token: %v, want a refusal naming --http-token-file", err)
	}
	ln, tok, err := listenHTTP("0.0.0.0:0", dir+"/tok", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if len(tok) < 16 {
		t.Fatalf("token %q", tok)
	}
	_, ts := newTestHTTP(t, httpOptions{Token: tok})
	if code, _, h := post(t, ts.URL+"/infill", `{"input_prefix": "x"}`); code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d", code)
	}
	req, _ := http.NewRequest("POST", ts.URL+"/infill", strings.NewReader(`{"input_prefix": "x"}`))
	req.Header.Set("Authorization", "Bearer wrong-token-wrong-token")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("wrong token: %v %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest("POST", ts.URL+"/infill", strings.NewReader(`{"input_prefix": "x"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("right token: %v %v", resp, err)
	}
	if resp, err := http.Get(ts.URL + "/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/health must stay open for probes: %v %v", resp, err)
	}
}

// TestBenchHTTP: the load test runs its rounds against a real server and
// reports every one, without errors.
func TestBenchHTTP(t *testing.T) {
	var out bytes.Buffer
	if err := benchHTTP(context.Background(), &out, tinyCopies(t, 1)[0], "cpu", []int{1, 3}, 20*time.Second, 4); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and two rows:\n%s", out.String())
	}
	for i, want := range []string{"1 ", "3 "} {
		f := strings.Fields(lines[2+i])
		if !strings.HasPrefix(lines[2+i], want) || f[1] != strconv.Itoa(4*(1+2*i)) || f[5] != "0" {
			t.Errorf("row %q: want %s clients, all %d requests answered, 0 errors", lines[2+i], want, 4*(1+2*i))
		}
	}
}

// TestHTTPOpenAIStream: a streamed completion is an SSE chunk in OpenAI's
// shape holding the answer, then data: [DONE].
func TestHTTPOpenAIStream(t *testing.T) {
	s, ts := newTestHTTP(t, httpOptions{})
	prefix, suffix := "func add(a, b int) int {\n\treturn ", "\n}\n"
	want := engineAnswer(t, s, "", prefix, suffix)
	body, _ := json.Marshal(map[string]any{"prompt": prefix, "suffix": suffix, "stream": true, "top_k": 40, "top_p": 0.99})
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	if len(events) != 2 || events[1] != "data: [DONE]" {
		t.Fatalf("want one chunk and [DONE]:\n%s", b)
	}
	var chunk struct {
		Choices []struct{ Text string } `json:"choices"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(events[0], "data: ")), &chunk); err != nil || len(chunk.Choices) != 1 || chunk.Choices[0].Text != want {
		t.Errorf("chunk %s (%v), want text %q", events[0], err, want)
	}
}
