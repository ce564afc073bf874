package lsp

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp/settings"
)

// engines holds the engine of the current model setting, loaded on first
// use. A failed load is remembered, so that every keystroke does not try
// (and report) it again; changing the model or device setting retries.
type engines struct {
	mu   sync.Mutex
	key  string
	slot *engineSlot
}

type engineSlot struct {
	ready chan struct{} // closed when the load finished
	eng   Engine
	err   error
}

// engine returns the engine for v's settings, loading it if needed. The
// load runs under the session's context, not ctx: a cancelled completion
// must not abort a model load other requests are waiting for.
func (s *Server) engine(ctx context.Context, v *view) (Engine, error) {
	model, device := v.settings.Model, v.settings.Device
	key := model + "\x00" + device
	s.engines.mu.Lock()
	slot := s.engines.slot
	if slot == nil || s.engines.key != key {
		if slot != nil {
			// The old model is no longer this session's: let the loader
			// unload it (runs on it still in flight finish first).
			go slot.close()
		}
		slot = &engineSlot{ready: make(chan struct{})}
		s.engines.key, s.engines.slot = key, slot
		s.goAsync(func(sctx context.Context) { s.loadEngine(sctx, slot, model, device) })
	}
	s.engines.mu.Unlock()
	select {
	case <-slot.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if slot.err != nil {
		return nil, jsonrpc2.Errorf(codeRequestFailed, "%v", slot.err)
	}
	return slot.eng, nil
}

// close gives the slot's engine back to the loader, once it is loaded, if
// the engine holds resources (io.Closer).
func (sl *engineSlot) close() {
	<-sl.ready
	if c, ok := sl.eng.(io.Closer); ok {
		c.Close()
	}
}

// closeAll gives the current engine back when the session ends.
func (es *engines) closeAll() {
	es.mu.Lock()
	slot := es.slot
	es.slot, es.key = nil, ""
	es.mu.Unlock()
	if slot != nil {
		slot.close()
	}
}

func (s *Server) loadEngine(ctx context.Context, slot *engineSlot, model, device string) {
	defer close(slot.ready)
	name := modelName(model)
	if device != "" {
		name += " on " + device
	}
	prog := s.startProgress(ctx, nil, "diffill: loading "+name, nil)
	prog.report("loading", 0)
	start := time.Now()
	eng, err := s.load(ctx, model, device)
	if err == nil && eng == nil {
		err = fmt.Errorf("loader returned no engine")
	}
	if err != nil {
		slot.err = fmt.Errorf("could not load %s: %w", name, err)
		prog.end("failed")
		s.log.Error("model load failed", zap.String("model", name), zap.Error(err))
		s.showMessage(protocol.MessageTypeError, loadFailureMessage(model, device, err))
		return
	}
	slot.eng = eng
	prog.end(fmt.Sprintf("loaded in %v", time.Since(start).Round(time.Millisecond)))
	s.log.Info("model loaded", zap.String("model", name), zap.Duration("took", time.Since(start)))
}

// loadFailureMessage tells the user what failed and what to do about it.
func loadFailureMessage(model, device string, err error) string {
	what := "the built-in model"
	fix := "Set diffill.model to a checkpoint directory (config.json, model.safetensors, tokenizer.json), " +
		"or reinstall diffill; run `diffill model info DIR` to check a checkpoint."
	if model != "" {
		what = fmt.Sprintf("the model in %q", model)
		fix = "Check that diffill.model names a checkpoint directory holding config.json, *.safetensors and tokenizer.json " +
			"(`diffill model info DIR` checks one), or clear the setting to use the built-in model."
	}
	if device != "" && device != "cpu" {
		fix += fmt.Sprintf(" If the device is the problem, set diffill.device to \"cpu\" (it is %q).", device)
	}
	return fmt.Sprintf("diffill could not load %s: %v. %s", what, err, fix)
}

// params maps the user's settings onto engine parameters; zero settings
// keep the engine's defaults.
func params(set settings.Settings) infill.Params {
	p := infill.DefaultParams()
	if set.Steps > 0 {
		p.Steps = set.Steps
	}
	if set.Sampler != "" {
		p.Sampler = set.Sampler
	}
	p.Temperature = set.Temperature
	if set.MaxTokens > 0 {
		p.MaxTokens = set.MaxTokens
	}
	if set.ContextTokens > 0 {
		p.ContextTokens = set.ContextTokens
	}
	if set.HoleMarker != "" {
		p.HoleMarker = set.HoleMarker
	}
	return p
}
