package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp"
)

// A remote engine runs the language server's requests on another diffill's
// `serve --http`, through /diffill/infill, so that every mode (complete,
// infill, fill-holes, rewrite with strength) works as it does locally:
// the team's GPU server answers, the editor's machine loads no model.
//
// It is chosen by naming a URL where a model directory goes: `serve
// --engine URL`, or the editor's diffill.model setting. The bearer token
// comes from the environment variable DIFFILL_ENGINE_TOKEN, so that it is
// in no settings file and no log.

// envEngineToken names the variable holding the remote's bearer token.
const envEngineToken = "DIFFILL_ENGINE_TOKEN"

// isRemoteEngine reports whether a model setting names a remote engine.
func isRemoteEngine(model string) bool {
	return strings.HasPrefix(model, "http://") || strings.HasPrefix(model, "https://")
}

type remoteEngine struct {
	base   string
	token  string
	client *http.Client
}

// newRemoteEngine checks that base is a diffill server (its /props says
// so) and that the token is accepted, so that a wrong URL is reported when
// the setting is made, not at the first completion.
func newRemoteEngine(ctx context.Context, base string) (*remoteEngine, error) {
	e := &remoteEngine{
		base:   strings.TrimSuffix(base, "/"),
		token:  os.Getenv(envEngineToken),
		client: &http.Client{Timeout: 2 * time.Minute},
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var props struct {
		Diffill *struct {
			Modes []string `json:"modes"`
		} `json:"diffill"`
	}
	if err := e.do(ctx, "GET", "/props", nil, &props); err != nil {
		return nil, fmt.Errorf("engine %s: %w", e.base, err)
	}
	if props.Diffill == nil {
		return nil, fmt.Errorf("engine %s answers /props but is not a diffill server (no \"diffill\" in it): this adapter needs `diffill serve --http` there", e.base)
	}
	return e, nil
}

// do sends one request, retrying once after a pause when the connection
// fails (the remote restarting), and decodes the answer into out.
func (e *remoteEngine) do(ctx context.Context, method, path string, body []byte, out any) error {
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, e.base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if e.token != "" {
			req.Header.Set("Authorization", "Bearer "+e.token)
		}
		resp, err = e.client.Do(req)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 1 {
			return fmt.Errorf("unreachable (tried twice): %w", err)
		}
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (set $" + envEngineToken + " to the server's token)"
		}
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("answer is not what a diffill server sends: %w", err)
	}
	return nil
}

// Run sends req to the remote's /diffill/infill.
func (e *remoteEngine) Run(ctx context.Context, req *infill.Request) (*infill.Result, error) {
	mode := req.Mode.String()
	body := map[string]any{
		"text": req.Text, "prelude": req.Prelude, "mode": mode,
		"steps": req.Params.Steps, "max_tokens": req.Params.MaxTokens, "candidates": req.Params.Candidates,
		"temperature": req.Params.Temperature, "top_k": req.Params.TopK, "top_p": req.Params.TopP,
		"seed": req.Params.Seed,
	}
	if req.Mode == infill.ModeRewrite {
		body["strength"] = req.Params.Strength
	}
	if req.Mode == infill.ModeFillHoles {
		body["hole_marker"] = req.Params.HoleMarker
	} else {
		spans := make([]map[string]int, len(req.Spans))
		for i, s := range req.Spans {
			spans[i] = map[string]int{"start": s.Start, "end": s.End}
		}
		body["spans"] = spans
	}
	if req.Params.TopP == 0 {
		delete(body, "top_p") // 0 is "off" here, but an error to the protocol
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Candidates []struct {
			Edits []struct {
				Start   int    `json:"start"`
				End     int    `json:"end"`
				NewText string `json:"new_text"`
			} `json:"edits"`
			Confidence float64 `json:"confidence"`
		} `json:"candidates"`
	}
	if err := e.do(ctx, "POST", "/diffill/infill", b, &out); err != nil {
		return nil, fmt.Errorf("engine %s: %w", e.base, err)
	}
	if len(out.Candidates) == 0 {
		return nil, errors.New("engine " + e.base + " answered no candidate")
	}
	res := &infill.Result{}
	for _, c := range out.Candidates {
		cand := infill.Candidate{Confidence: c.Confidence}
		for _, ed := range c.Edits {
			if ed.Start < 0 || ed.End < ed.Start || ed.End > len(req.Text) {
				return nil, fmt.Errorf("engine %s answered an edit [%d, %d) outside the text", e.base, ed.Start, ed.End)
			}
			cand.Edits = append(cand.Edits, infill.Edit{Start: ed.Start, End: ed.End, NewText: ed.NewText})
			cand.Raw = append(cand.Raw, ed.NewText)
		}
		res.Candidates = append(res.Candidates, cand)
	}
	return res, nil
}

// withRemote is a loader that sends a model setting naming a URL to that
// remote engine, and any other to local.
func withRemote(local lsp.Loader) lsp.Loader {
	return func(ctx context.Context, model, device string) (lsp.Engine, error) {
		if isRemoteEngine(model) {
			return newRemoteEngine(ctx, model)
		}
		return local(ctx, model, device)
	}
}
