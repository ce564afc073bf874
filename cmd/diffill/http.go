package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp"
)

// diffill serve --http speaks the HTTP protocols other editor plugins
// already use (llama.cpp's /infill, OpenAI's legacy /v1/completions with a
// suffix, Mistral's and Inception's /v1/fim/completions) plus diffill's own
// /diffill/infill for what they have no field for (several holes, rewrite),
// on the same engine cache as the language server.
//
// The engine runs one request at a time (an engine serialises its runs), so
// the server admits one running request and a bounded queue behind it; a
// request past that gets 503 with Retry-After at once rather than waiting
// unboundedly, which is what lets many editors share one server.

// httpOptions are the knobs of the HTTP server.
type httpOptions struct {
	Model, Device string
	// Token, when set, is the bearer token every request but /health must send.
	Token string
	// Queue is how many requests may wait behind the running one.
	Queue int
	// Timeout bounds a request's time in the queue and on the engine.
	Timeout time.Duration
	// MaxBody is the largest request body in bytes.
	MaxBody int64
}

func (o *httpOptions) fill() {
	if o.Queue <= 0 {
		o.Queue = 16
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 4 << 20
	}
}

type httpServer struct {
	opts    httpOptions
	engines *engineCache
	log     *zap.Logger
	admit   chan struct{} // one per request admitted: running or queued
	running chan struct{} // capacity 1: the request on the engine
	metrics *httpMetrics

	mu  sync.Mutex
	eng *engineHandle // loaded on the first request that needs it
}

func newHTTPServer(engines *engineCache, log *zap.Logger, opts httpOptions) *httpServer {
	opts.fill()
	return &httpServer{
		opts: opts, engines: engines, log: log,
		admit:   make(chan struct{}, opts.Queue+1),
		running: make(chan struct{}, 1),
		metrics: newHTTPMetrics(),
	}
}

// handler is the server's routes, behind the token check.
func (s *httpServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /props", s.props)
	mux.HandleFunc("GET /metrics", s.metrics.serve)
	mux.HandleFunc("POST /infill", s.llamaInfill)
	mux.HandleFunc("POST /v1/completions", s.openAICompletions)
	mux.HandleFunc("POST /v1/fim/completions", s.fimCompletions)
	mux.HandleFunc("POST /diffill/infill", s.diffillInfill)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s: diffill serves POST /infill, /v1/completions, /v1/fim/completions, /diffill/infill and GET /health, /props, /metrics", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /health stays open, as llama.cpp's does, so that probes need no token.
		if s.opts.Token != "" && r.URL.Path != "/health" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.opts.Token)) != 1 {
				w.Header().Set("WWW-Authenticate", "Bearer")
				httpError(w, http.StatusUnauthorized, "missing or wrong bearer token: send 'Authorization: Bearer TOKEN' with the token of the server's --http-token-file")
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBody)
		mux.ServeHTTP(w, r)
	})
}

// engine returns the handle on the configured model, loading it once.
func (s *httpServer) engine(ctx context.Context) (*engineHandle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eng != nil {
		return s.eng, nil
	}
	e, err := s.engines.load(ctx, s.opts.Model, s.opts.Device)
	if err != nil {
		return nil, fmt.Errorf("loading model %s: %w", modelOrBuiltin(s.opts.Model), err)
	}
	s.eng = e.(*engineHandle)
	return s.eng, nil
}

func (s *httpServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eng != nil {
		s.eng.Close()
		s.eng = nil
	}
}

// countTokens is the length of text in the model's tokens (0 without a tokenizer).
func (h *engineHandle) countTokens(ctx context.Context, text string) (int, error) {
	l, release, err := h.c.acquire(ctx, h.e)
	if err != nil {
		return 0, err
	}
	defer release()
	if l.m.Tokenizer == nil {
		return 0, nil
	}
	return len(l.m.Tokenizer.EncodeOrdinary(text)), nil
}

var _ lsp.Engine = (*engineHandle)(nil)

// outcome is one run's answer as the protocols need it.
type outcome struct {
	res        *infill.Result
	partial    []string // with limited: the spans' text when the time ran out
	limited    bool     // the client's time limit (t_max_predict_ms) ended the run
	promptN    int
	predictedN int
	elapsed    time.Duration
	truncated  bool
}

// errBusy is a full queue.
var errBusy = errors.New("server busy: queue full")

// statusError is an error with the HTTP status it answers.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// run admits req, waits its turn and runs it. predictLimit > 0 ends the
// decoding after that long with what is committed so far, as llama.cpp's
// t_max_predict_ms does; the server's own timeout is an error.
func (s *httpServer) run(r *http.Request, req *infill.Request, predictLimit time.Duration) (*outcome, error) {
	select {
	case s.admit <- struct{}{}:
	default:
		return nil, errBusy
	}
	defer func() { <-s.admit }()
	s.metrics.queued.Add(1)
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	select {
	case s.running <- struct{}{}:
		s.metrics.queued.Add(-1)
	case <-ctx.Done():
		s.metrics.queued.Add(-1)
		return nil, s.ctxError(r, ctx)
	}
	defer func() { <-s.running }()

	eng, err := s.engine(ctx)
	if err != nil {
		return nil, &statusError{http.StatusServiceUnavailable, err.Error()}
	}
	out := &outcome{}
	prompt := req.Prelude + req.Text
	if out.promptN, err = eng.countTokens(ctx, prompt); err != nil {
		return nil, s.ctxError(r, ctx)
	}
	out.truncated = out.promptN > infill.DefaultParams().ContextTokens

	runCtx := ctx
	var last []string
	var lastMu sync.Mutex
	if predictLimit > 0 {
		var stop context.CancelFunc
		runCtx, stop = context.WithTimeout(ctx, predictLimit)
		defer stop()
		inner := req.OnStep
		req.OnStep = func(st infill.Step) {
			lastMu.Lock()
			last = append(last[:0], st.Texts...)
			lastMu.Unlock()
			if inner != nil {
				inner(st)
			}
		}
	}
	start := time.Now()
	res, err := eng.Run(runCtx, req)
	out.elapsed = time.Since(start)
	if err != nil {
		if ctx.Err() == nil && runCtx.Err() != nil {
			// The client's limit, not ours: answer what is committed.
			lastMu.Lock()
			out.partial, out.limited = append([]string(nil), last...), true
			lastMu.Unlock()
			for len(out.partial) < len(req.Spans) {
				out.partial = append(out.partial, "")
			}
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, s.ctxError(r, ctx)
		}
		return nil, &statusError{http.StatusBadRequest, err.Error()}
	}
	out.res = res
	return out, nil
}

// ctxError says why ctx ended: the client left (499, nginx's code, which
// only the log and metrics see) or the server's time limit passed (504).
func (s *httpServer) ctxError(r *http.Request, ctx context.Context) error {
	if r.Context().Err() != nil {
		return &statusError{499, "client closed the request"}
	}
	return &statusError{http.StatusGatewayTimeout, fmt.Sprintf("request took longer than the server's limit of %v (--http-timeout)", s.opts.Timeout)}
}

// fail writes err as an HTTP error.
func (s *httpServer) fail(w http.ResponseWriter, err error) {
	var se *statusError
	switch {
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("server busy: %d requests running or queued; retry after a second", s.opts.Queue+1))
	case errors.As(err, &se):
		if se.code == 499 {
			return // nobody to answer
		}
		httpError(w, se.code, se.msg)
	default:
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}

// httpError answers in llama.cpp's and OpenAI's error shape.
func httpError(w http.ResponseWriter, code int, msg string) {
	typ := "invalid_request_error"
	switch {
	case code == http.StatusUnauthorized:
		typ = "authentication_error"
	case code == http.StatusNotFound:
		typ = "not_found_error"
	case code == http.StatusServiceUnavailable:
		typ = "unavailable_error"
	case code >= 500:
		typ = "server_error"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg, "type": typ}})
}

// decode reads a JSON body into v, turning decoder errors into what the
// client should fix.
func decode(r *http.Request, v any) error {
	// The Content-Type is not checked: curl -d sends a form type with
	// JSON bodies, and the body itself says whether it is JSON.
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return &statusError{http.StatusBadRequest, "body holds more than one JSON value: send one object"}
		}
		return nil
	}
	var mbe *http.MaxBytesError
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return &statusError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes (--http-max-body): send less context", mbe.Limit)}
	case errors.As(err, &ute):
		return &statusError{http.StatusBadRequest, fmt.Sprintf("field %q: got a JSON %s, want %s", ute.Field, ute.Value, jsonKind(ute.Type.String()))}
	case errors.As(err, &se):
		return &statusError{http.StatusBadRequest, fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err)}
	case errors.Is(err, io.EOF):
		return &statusError{http.StatusBadRequest, "empty body: send a JSON object"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &statusError{http.StatusBadRequest, "malformed JSON: the body ends inside a value"}
	}
	var se2 *statusError
	if errors.As(err, &se2) {
		return se2
	}
	return &statusError{http.StatusBadRequest, fmt.Sprintf("bad request body: %v", err)}
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"), strings.HasPrefix(goType, "main.stopList"):
		return "an array"
	case goType == "string", goType == "*string":
		return "a string"
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	}
	return "an object"
}

// stopList is a stop field: a string or an array of strings (OpenAI takes both).
type stopList []string

func (l *stopList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return &statusError{http.StatusBadRequest, "field \"stop\": want a string or an array of strings"}
	}
	*l = many
	return nil
}

// sampling are the knobs every protocol shares.
type sampling struct {
	Temperature *float64 `json:"temperature"`
	TopK        *int     `json:"top_k"`
	TopP        *float64 `json:"top_p"`
	Seed        *int64   `json:"seed"`
}

// params turns the knobs into engine parameters; maxTokens caps the answer.
func (sm sampling) params(maxTokens int) (infill.Params, error) {
	var p infill.Params
	if sm.Temperature != nil {
		if *sm.Temperature < 0 {
			return p, &statusError{http.StatusBadRequest, "temperature must be >= 0"}
		}
		p.Temperature = *sm.Temperature
	}
	if sm.TopK != nil && *sm.TopK > 0 {
		p.TopK = *sm.TopK
	}
	if sm.TopP != nil {
		if *sm.TopP < 0 || *sm.TopP > 1 {
			return p, &statusError{http.StatusBadRequest, "top_p must be in [0, 1]"}
		}
		if *sm.TopP < 1 {
			p.TopP = *sm.TopP
		}
	}
	if sm.Seed != nil && *sm.Seed >= 0 { // -1: random, as llama.cpp
		p.Seed = uint64(*sm.Seed)
	}
	// The engine's own mask count (16 for a line, 32 for a block) is its
	// cap: a diffusion model decodes every mask it is given, so a client's
	// generous n_predict (llama.vim sends 128) would only cost time.
	if maxTokens > 0 && maxTokens < 32 {
		p.MaxTokens = maxTokens
	}
	return p, nil
}

// cutStops ends text at its first stop string, or at a line indented less
// than nIndent (after the first line, as llama.cpp's n_indent).
func cutStops(text string, stops []string, nIndent int) (out, stopType, word string) {
	cut, stopType := len(text), "eos"
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(text, st); i >= 0 && i < cut {
			cut, word, stopType = i, st, "word"
		}
	}
	if nIndent > 0 {
		off := 0
		for i, line := range strings.SplitAfter(text, "\n") {
			if i > 0 && strings.TrimSpace(line) != "" {
				ind := len(line) - len(strings.TrimLeft(line, " \t"))
				if ind < nIndent && off < cut {
					cut, word, stopType = off, "", "limit"
					break
				}
			}
			off += len(line)
		}
	}
	return text[:cut], stopType, word
}

func (s *httpServer) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"status": "ok"})
}

func (s *httpServer) props(w http.ResponseWriter, r *http.Request) {
	d := infill.DefaultParams()
	writeJSON(w, map[string]any{
		"default_generation_settings": map[string]any{
			"n_ctx": d.ContextTokens,
			"params": map[string]any{
				"n_predict": 32, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": -1,
			},
		},
		"total_slots": 1,
		"model_path":  modelOrBuiltin(s.opts.Model),
		"build_info":  "diffill " + buildVersion(),
		"diffill": map[string]any{
			"modes":     []string{"complete", "infill", "rewrite", "fill-holes"},
			"endpoints": []string{"/infill", "/v1/completions", "/v1/fim/completions", "/diffill/infill"},
			"queue":     s.opts.Queue,
		},
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// sse writes server-sent events, flushing each.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func newSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	f, _ := w.(http.Flusher)
	return &sse{w, f}
}

func (e *sse) send(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(e.w, "data: %s\n\n", b)
	if e.f != nil {
		e.f.Flush()
	}
}

// ---- llama.cpp /infill

type inputExtra struct {
	Filename string `json:"filename"`
	Text     string `json:"text"`
}

type llamaInfillRequest struct {
	sampling
	InputPrefix    string       `json:"input_prefix"`
	InputSuffix    string       `json:"input_suffix"`
	InputExtra     []inputExtra `json:"input_extra"`
	Prompt         string       `json:"prompt"`
	NPredict       *int         `json:"n_predict"`
	NIndent        int          `json:"n_indent"`
	TMaxPredictMS  int          `json:"t_max_predict_ms"`
	Stop           stopList     `json:"stop"`
	Stream         bool         `json:"stream"`
	CachePrompt    *bool        `json:"cache_prompt"`
	ResponseFields []string     `json:"response_fields"`
}

// prelude lays the extra files out as Go-style file comments before the
// document, the way snippets of the workspace reach the model.
func prelude(extra []inputExtra) string {
	var b strings.Builder
	for _, x := range extra {
		if x.Text == "" {
			continue
		}
		if x.Filename != "" {
			fmt.Fprintf(&b, "// %s\n", x.Filename)
		}
		b.WriteString(x.Text)
		if !strings.HasSuffix(x.Text, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (s *httpServer) llamaInfill(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := http.StatusOK
	defer func() { s.metrics.observe("/infill", code, time.Since(start)) }()
	var in llamaInfillRequest
	if err := decode(r, &in); err != nil {
		code = s.failCode(w, err)
		return
	}
	nPredict := -1
	if in.NPredict != nil {
		nPredict = *in.NPredict
	}
	p, err := in.params(nPredict)
	if err != nil {
		code = s.failCode(w, err)
		return
	}
	cursor := len(in.InputPrefix) + len(in.Prompt)
	req := &infill.Request{
		Text:    in.InputPrefix + in.Prompt + in.InputSuffix,
		Spans:   []infill.Span{{Start: cursor, End: cursor}},
		Mode:    infill.ModeComplete,
		Params:  p,
		Prelude: prelude(in.InputExtra),
	}
	limit := time.Duration(in.TMaxPredictMS) * time.Millisecond
	if nPredict == 0 {
		// The ring warm-up (llama.vim): read the context so that the
		// engine's cache holds it, write nothing. One step over one mask
		// is that read; the client's time limit is not applied, as a
		// cut-off read would warm nothing.
		req.Params.MaxTokens, req.Params.Steps, req.Params.Length = 1, 1, "fixed"
		limit = 0
	}
	out, err := s.run(r, req, limit)
	if err != nil {
		code = s.failCode(w, err)
		return
	}
	content := ""
	if nPredict != 0 {
		if out.limited {
			content = out.partial[0]
		} else {
			content = infill.Apply(req.Text, out.res.Candidates[0].Edits)[cursor:]
			content = content[:len(content)-len(in.InputSuffix)]
		}
	}
	content, stopType, word := cutStops(content, in.Stop, in.NIndent)
	if out.limited {
		stopType = "limit"
	}
	eng, _ := s.engine(r.Context())
	if eng != nil && content != "" {
		out.predictedN, _ = eng.countTokens(r.Context(), content)
	}
	s.metrics.tokens(out.predictedN, out.elapsed)
	resp := map[string]any{
		"content":          content,
		"stop":             true,
		"stop_type":        stopType,
		"stopping_word":    word,
		"truncated":        out.truncated,
		"tokens_cached":    0,
		"tokens_evaluated": out.promptN,
		"tokens_predicted": out.predictedN,
		"model":            modelOrBuiltin(s.opts.Model),
		"timings":          timings(out),
	}
	if len(in.ResponseFields) > 0 {
		resp = pickFields(resp, in.ResponseFields)
	}
	if in.Stream {
		ev := newSSE(w)
		if content != "" {
			ev.send(map[string]any{"content": content, "stop": false})
		}
		resp["content"] = ""
		resp["stop"] = true
		ev.send(resp)
		return
	}
	writeJSON(w, resp)
}

// failCode writes err and returns the status for the metrics.
func (s *httpServer) failCode(w http.ResponseWriter, err error) int {
	s.fail(w, err)
	var se *statusError
	switch {
	case errors.Is(err, errBusy):
		return http.StatusServiceUnavailable
	case errors.As(err, &se):
		return se.code
	}
	return http.StatusInternalServerError
}

// timings is llama.cpp's timings object. A diffusion run reads the prompt
// and writes the answer in the same passes, so the whole run counts as
// prediction.
func timings(o *outcome) map[string]any {
	ms := float64(o.elapsed.Microseconds()) / 1000
	perSec := 0.0
	if ms > 0 {
		perSec = float64(o.predictedN) / (ms / 1000)
	}
	return map[string]any{
		"prompt_n": o.promptN, "prompt_ms": 0.0, "prompt_per_token_ms": 0.0, "prompt_per_second": 0.0,
		"predicted_n": o.predictedN, "predicted_ms": ms, "predicted_per_second": perSec,
		"predicted_per_token_ms": ms / float64(max(o.predictedN, 1)),
	}
}

// pickFields keeps only the named fields; "a/b" names b inside a and is
// answered under the key "a/b", as llama.cpp's response_fields does.
func pickFields(resp map[string]any, fields []string) map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		var v any = resp
		for _, part := range strings.Split(f, "/") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[part]
		}
		if v != nil {
			out[f] = v
		}
	}
	return out
}

// ---- OpenAI /v1/completions and FIM

type completionRequest struct {
	sampling
	Model     string          `json:"model"`
	Prompt    json.RawMessage `json:"prompt"`
	Suffix    string          `json:"suffix"`
	MaxTokens int             `json:"max_tokens"`
	Stop      stopList        `json:"stop"`
	Stream    bool            `json:"stream"`
	// Mistral's FIM names the seed random_seed.
	RandomSeed *int64 `json:"random_seed"`
}

func (s *httpServer) openAICompletions(w http.ResponseWriter, r *http.Request) {
	s.completions(w, r, "/v1/completions", false)
}

func (s *httpServer) fimCompletions(w http.ResponseWriter, r *http.Request) {
	s.completions(w, r, "/v1/fim/completions", true)
}

func (s *httpServer) completions(w http.ResponseWriter, r *http.Request, route string, fim bool) {
	start := time.Now()
	code := http.StatusOK
	defer func() { s.metrics.observe(route, code, time.Since(start)) }()
	var in completionRequest
	if err := decode(r, &in); err != nil {
		code = s.failCode(w, err)
		return
	}
	var prompt string
	if len(in.Prompt) == 0 || json.Unmarshal(in.Prompt, &prompt) != nil {
		code = s.failCode(w, &statusError{http.StatusBadRequest, "field \"prompt\": want one string (the code before the cursor); arrays of prompts are not served"})
		return
	}
	if in.RandomSeed != nil && in.Seed == nil {
		in.Seed = in.RandomSeed
	}
	p, err := in.params(in.MaxTokens)
	if err != nil {
		code = s.failCode(w, err)
		return
	}
	req := &infill.Request{
		Text:   prompt + in.Suffix,
		Spans:  []infill.Span{{Start: len(prompt), End: len(prompt)}},
		Mode:   infill.ModeComplete,
		Params: p,
	}
	out, err := s.run(r, req, 0)
	if err != nil {
		code = s.failCode(w, err)
		return
	}
	text := infill.Apply(req.Text, out.res.Candidates[0].Edits)[len(prompt):]
	text = text[:len(text)-len(in.Suffix)]
	text, stopType, _ := cutStops(text, in.Stop, 0)
	finish := "stop"
	if stopType == "limit" {
		finish = "length"
	}
	if eng, _ := s.engine(r.Context()); eng != nil && text != "" {
		out.predictedN, _ = eng.countTokens(r.Context(), text)
	}
	s.metrics.tokens(out.predictedN, out.elapsed)
	model := in.Model
	if model == "" {
		model = modelOrBuiltin(s.opts.Model)
	}
	id := fmt.Sprintf("cmpl-%d", time.Now().UnixNano())
	choice := map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish}
	object := "text_completion"
	if fim {
		// Mistral answers FIM as a chat message; Inception as text: both.
		choice["message"] = map[string]any{"role": "assistant", "content": text}
		object = "fim.completion"
	}
	usage := map[string]any{"prompt_tokens": out.promptN, "completion_tokens": out.predictedN, "total_tokens": out.promptN + out.predictedN}
	resp := map[string]any{"id": id, "object": object, "created": time.Now().Unix(), "model": model, "choices": []any{choice}, "usage": usage}
	if in.Stream {
		ev := newSSE(w)
		if fim {
			choice["delta"] = map[string]any{"content": text}
		}
		ev.send(resp)
		fmt.Fprint(w, "data: [DONE]\n\n")
		return
	}
	writeJSON(w, resp)
}

// ---- diffill's own: several spans or holes, rewrite, denoising steps

type diffillRequest struct {
	sampling
	Text string `json:"text"`
	// Prelude is code the model reads before the text (workspace snippets).
	Prelude    string                     `json:"prelude"`
	Spans      []struct{ Start, End int } `json:"spans"`
	Mode       string                     `json:"mode"`
	Strength   float64                    `json:"strength"`
	HoleMarker string                     `json:"hole_marker"`
	Steps      int                        `json:"steps"`
	MaxTokens  int                        `json:"max_tokens"`
	Candidates int                        `json:"candidates"`
	// Stream sends each denoising step as an event, then the answer.
	Stream bool `json:"stream"`
}

func (s *httpServer) diffillInfill(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := http.StatusOK
	defer func() { s.metrics.observe("/diffill/infill", code, time.Since(start)) }()
	var in diffillRequest
	if err := decode(r, &in); err != nil {
		code = s.failCode(w, err)
		return
	}
	req, err := in.request()
	if err != nil {
		code = s.failCode(w, err)
		return
	}
	var ev *sse
	if in.Stream {
		ev = newSSE(w)
		req.OnStep = func(st infill.Step) {
			ev.send(map[string]any{"step": st.Done, "total": st.Total, "texts": st.Texts})
		}
	}
	out, err := s.run(r, req, 0)
	if err != nil {
		code = s.failCode(w, err)
		if ev != nil {
			ev.send(map[string]any{"error": err.Error()})
		}
		return
	}
	var cands []any
	for _, c := range out.res.Candidates {
		var edits []any
		for _, e := range c.Edits {
			edits = append(edits, map[string]any{"start": e.Start, "end": e.End, "new_text": e.NewText})
		}
		cands = append(cands, map[string]any{"edits": edits, "confidence": c.Confidence, "text": infill.Apply(req.Text, c.Edits)})
	}
	s.metrics.tokens(0, out.elapsed)
	resp := map[string]any{"mode": req.Mode.String(), "candidates": cands, "tokens_evaluated": out.promptN, "elapsed_ms": float64(out.elapsed.Microseconds()) / 1000}
	if ev != nil {
		ev.send(resp)
		return
	}
	writeJSON(w, resp)
}

func (in *diffillRequest) request() (*infill.Request, error) {
	bad := func(format string, a ...any) error {
		return &statusError{http.StatusBadRequest, fmt.Sprintf(format, a...)}
	}
	p, err := in.params(0)
	if err != nil {
		return nil, err
	}
	if in.MaxTokens < 0 || in.MaxTokens > 256 {
		return nil, bad("max_tokens %d: want 0 (the engine's choice) to 256", in.MaxTokens)
	}
	if in.Steps < 0 || in.Steps > 1024 {
		return nil, bad("steps %d: want 0 (the engine's choice) to 1024", in.Steps)
	}
	if in.Candidates < 0 || in.Candidates > 8 {
		return nil, bad("candidates %d: want 1 to 8", in.Candidates)
	}
	p.MaxTokens, p.Steps, p.Candidates = in.MaxTokens, in.Steps, in.Candidates
	req := &infill.Request{Text: in.Text, Params: p, Prelude: in.Prelude}
	switch in.Mode {
	case "", "infill":
		req.Mode = infill.ModeInfill
	case "complete":
		req.Mode = infill.ModeComplete
	case "rewrite":
		req.Mode = infill.ModeRewrite
		if in.Strength < 0 || in.Strength > 1 {
			return nil, bad("strength %v: want a fraction in (0, 1]", in.Strength)
		}
		req.Params.Strength = in.Strength
	case "fill-holes":
		req.Mode = infill.ModeFillHoles
		req.Params.HoleMarker = in.HoleMarker
		marker := in.HoleMarker
		if marker == "" {
			marker = infill.DefaultParams().HoleMarker
		}
		if !strings.Contains(in.Text, marker) {
			return nil, bad("mode fill-holes: the text holds no hole %q; mark each hole with it (or name another with hole_marker)", marker)
		}
		return req, nil
	default:
		return nil, bad("mode %q: want complete, infill, rewrite or fill-holes", in.Mode)
	}
	if len(in.Spans) == 0 {
		return nil, bad("mode %s: send spans [{\"start\":B,\"end\":E}] (byte offsets into text)", req.Mode)
	}
	if len(in.Spans) > 64 {
		return nil, bad("%d spans: send at most 64", len(in.Spans))
	}
	spans := make([]infill.Span, len(in.Spans))
	for i, sp := range in.Spans {
		spans[i] = infill.Span{Start: sp.Start, End: sp.End}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].Start < spans[j].Start })
	for i, sp := range spans {
		if sp.Start < 0 || sp.End < sp.Start || sp.End > len(in.Text) {
			return nil, bad("span [%d, %d): want 0 <= start <= end <= %d (the text's length in bytes)", sp.Start, sp.End, len(in.Text))
		}
		if i > 0 && sp.Start < spans[i-1].End {
			return nil, bad("spans [%d, %d) and [%d, %d) overlap", spans[i-1].Start, spans[i-1].End, sp.Start, sp.End)
		}
	}
	req.Spans = spans
	return req, nil
}

// ---- metrics

// httpMetrics are Prometheus counters, written in its text format by hand:
// a handful of series needs no client library.
type httpMetrics struct {
	mu       sync.Mutex
	requests map[string]int64 // route + "\x00" + code
	buckets  []float64        // latency bucket bounds, seconds
	counts   map[string][]int64
	sums     map[string]float64
	queued   atomic.Int64
	tokN     atomic.Int64
	tokNanos atomic.Int64
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: map[string]int64{},
		buckets:  []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		counts:   map[string][]int64{},
		sums:     map[string]float64{},
	}
}

func (m *httpMetrics) observe(route string, code int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[route+"\x00"+strconv.Itoa(code)]++
	c := m.counts[route]
	if c == nil {
		c = make([]int64, len(m.buckets)+1)
		m.counts[route] = c
	}
	sec := d.Seconds()
	for i, b := range m.buckets {
		if sec <= b {
			c[i]++
		}
	}
	c[len(m.buckets)]++
	m.sums[route] += sec
}

func (m *httpMetrics) tokens(n int, d time.Duration) {
	m.tokN.Add(int64(n))
	m.tokNanos.Add(int64(d))
}

func (m *httpMetrics) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP diffill_http_requests_total Requests answered, by route and status code.")
	fmt.Fprintln(w, "# TYPE diffill_http_requests_total counter")
	keys := make([]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		route, code, _ := strings.Cut(k, "\x00")
		fmt.Fprintf(w, "diffill_http_requests_total{route=%q,code=%q} %d\n", route, code, m.requests[k])
	}
	fmt.Fprintln(w, "# HELP diffill_http_request_duration_seconds Time from request to answer.")
	fmt.Fprintln(w, "# TYPE diffill_http_request_duration_seconds histogram")
	routes := make([]string, 0, len(m.counts))
	for r := range m.counts {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	for _, route := range routes {
		c := m.counts[route]
		for i, b := range m.buckets {
			fmt.Fprintf(w, "diffill_http_request_duration_seconds_bucket{route=%q,le=\"%g\"} %d\n", route, b, c[i])
		}
		fmt.Fprintf(w, "diffill_http_request_duration_seconds_bucket{route=%q,le=\"+Inf\"} %d\n", route, c[len(m.buckets)])
		fmt.Fprintf(w, "diffill_http_request_duration_seconds_sum{route=%q} %g\n", route, m.sums[route])
		fmt.Fprintf(w, "diffill_http_request_duration_seconds_count{route=%q} %d\n", route, c[len(m.buckets)])
	}
	fmt.Fprintln(w, "# HELP diffill_http_queue_depth Requests waiting for the engine.")
	fmt.Fprintln(w, "# TYPE diffill_http_queue_depth gauge")
	fmt.Fprintf(w, "diffill_http_queue_depth %d\n", m.queued.Load())
	fmt.Fprintln(w, "# HELP diffill_tokens_predicted_total Tokens written in answers.")
	fmt.Fprintln(w, "# TYPE diffill_tokens_predicted_total counter")
	fmt.Fprintf(w, "diffill_tokens_predicted_total %d\n", m.tokN.Load())
	fmt.Fprintln(w, "# HELP diffill_tokens_per_second Tokens written per second of engine time, over the server's life.")
	fmt.Fprintln(w, "# TYPE diffill_tokens_per_second gauge")
	tps := 0.0
	if ns := m.tokNanos.Load(); ns > 0 {
		tps = float64(m.tokN.Load()) / (float64(ns) / 1e9)
	}
	fmt.Fprintf(w, "diffill_tokens_per_second %g\n", tps)
}

// ---- serving

// serveHTTP serves s on ln until ctx ends. Headers must arrive within 10s
// and a body within 30s, so that slow clients cannot hold connections.
func serveHTTP(ctx context.Context, ln net.Listener, s *httpServer) error {
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(s.log),
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		case <-done:
		}
	}()
	err := srv.Serve(ln)
	close(done)
	s.close()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// listenHTTP binds --http: loopback unless a host is named; beyond
// loopback a token is required.
func listenHTTP(addrFlag, tokenFile string, log *zap.Logger) (net.Listener, string, error) {
	addr, explicit, err := listenAddr(addrFlag)
	if err != nil {
		return nil, "", fmt.Errorf("--http: %w", err)
	}
	var token string
	if tokenFile != "" {
		if token, err = loadToken(tokenFile); err != nil {
			return nil, "", fmt.Errorf("--http-token-file: %w", err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--http: %w", err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		if !explicit {
			ln.Close()
			return nil, "", fmt.Errorf("refusing to serve HTTP on %s, which is not a loopback address; name the host explicitly to allow it", ln.Addr())
		}
		if token == "" {
			ln.Close()
			return nil, "", fmt.Errorf("--http %s is reachable beyond this machine: add --http-token-file FILE (created with a random token if missing) so that only clients with the token are served", addrFlag)
		}
		log.Warn("serving HTTP on a non-loopback address: the token is all that protects it, and the code sent travels unencrypted (put a TLS proxy in front)", zap.Stringer("addr", ln.Addr()))
	}
	return ln, token, nil
}
