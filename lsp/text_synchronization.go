package lsp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/lsp/document"
)

func (s *Server) didOpen(ctx context.Context, v *view, p *protocol.DidOpenTextDocumentParams) (any, error) {
	item := p.TextDocument
	if item.URI == "" {
		return nil, errors.New("didOpen without a uri")
	}
	var st *docState
	if err := s.admit(item.URI, len(item.Text)); err != nil {
		st = &docState{broken: err}
		s.showMessage(protocol.MessageTypeWarning, fmt.Sprintf("diffill: not serving %s: %v", item.URI, err))
	} else {
		st = &docState{doc: document.New(item.URI, string(item.LanguageID), item.Version, item.Text)}
		s.syncWorkspace(item.URI, st.doc)
	}
	s.update(func(v *view) { v.docs = v.withDoc(item.URI, st) })
	return nil, nil
}

// admit checks a document of n bytes against the size limits, counting
// the other open documents.
func (s *Server) admit(uri protocol.DocumentURI, n int) error {
	if n > s.opt.MaxDocumentBytes {
		return fmt.Errorf("%w: %d bytes, over the %d-byte limit", document.ErrTooLarge, n, s.opt.MaxDocumentBytes)
	}
	docs := s.view.Load().docs
	total := docs.keptBytes() + n
	if d, ok := docs.get(uri); ok {
		total -= d.size()
	}
	if total > s.opt.MaxOpenBytes {
		return fmt.Errorf("%w: open documents would take %d bytes, over the %d-byte limit; close some", document.ErrTooLarge, total, s.opt.MaxOpenBytes)
	}
	return nil
}

func (s *Server) didChange(ctx context.Context, v *view, p *didChangeParams) (any, error) {
	uri := p.TextDocument.URI
	old, ok := v.docs.get(uri)
	if !ok {
		return nil, fmt.Errorf("didChange for %s: %w", uri, errUnknownDocument)
	}
	s.observeTyping(uri)
	changes := p.Changes
	base := old.doc
	if base == nil {
		// Not kept (too large, or out of sync): only a full-text change
		// can bring it back.
		last := -1
		for i, c := range changes {
			if c.Range == nil {
				last = i
			}
		}
		if last < 0 {
			return nil, nil
		}
		base = document.New(uri, "", 0, "")
		changes = changes[last:]
	} else if p.TextDocument.Version <= base.Version {
		s.log.Warn("didChange version did not increase", zap.String("uri", string(uri)),
			zap.Int32("had", base.Version), zap.Int32("got", p.TextDocument.Version))
	}
	next, err := base.Apply(changes, p.TextDocument.Version, v.enc, s.opt.MaxDocumentBytes)
	st := &docState{doc: next}
	if err != nil {
		// The client's text and ours now differ; serving requests on a
		// guess would put edits in the wrong place.
		if !errors.Is(err, document.ErrTooLarge) {
			err = fmt.Errorf("out of sync with the editor after a bad edit (%v); close and reopen the file", err)
		}
		st = &docState{broken: err}
		s.showMessage(protocol.MessageTypeWarning, fmt.Sprintf("diffill: not serving %s: %v", uri, err))
	} else if aerr := s.admit(uri, next.Len()); aerr != nil {
		st = &docState{broken: aerr}
		s.showMessage(protocol.MessageTypeWarning, fmt.Sprintf("diffill: not serving %s: %v", uri, aerr))
	}
	s.update(func(v *view) { v.docs = v.withDoc(uri, st) })
	s.syncWorkspace(uri, st.doc)
	return nil, nil
}

// badChange handles a didChange whose ranges are malformed: the edit cannot
// be applied, so the server's copy of the document no longer matches the
// editor's, and the document is not served until it is reopened (as after
// any edit that does not apply).
func (s *Server) badChange(raw json.RawMessage, perr error) {
	var p struct {
		TextDocument struct {
			URI protocol.DocumentURI `json:"uri"`
		} `json:"textDocument"`
	}
	if json.Unmarshal(raw, &p) != nil || p.TextDocument.URI == "" {
		s.log.Warn("didChange with malformed ranges and no document", zap.Error(perr))
		return
	}
	uri := p.TextDocument.URI
	if _, ok := s.view.Load().docs.get(uri); !ok {
		return
	}
	err := fmt.Errorf("out of sync with the editor after an edit with a malformed range (%v); close and reopen the file", perr)
	s.update(func(v *view) { v.docs = v.withDoc(uri, &docState{broken: err}) })
	s.showMessage(protocol.MessageTypeWarning, fmt.Sprintf("diffill: not serving %s: %v", uri, err))
}

func (s *Server) didClose(ctx context.Context, v *view, p *protocol.DidCloseTextDocumentParams) (any, error) {
	uri := p.TextDocument.URI
	s.mu.Lock()
	for k, l := range s.latest {
		if k.uri == uri {
			l.cancel(errModified)
		}
	}
	delete(s.typing, uri)
	s.mu.Unlock()
	s.update(func(v *view) { v.docs = v.withDoc(uri, nil) })
	s.syncWorkspace(uri, nil)
	s.cache.forget(uri)
	return nil, nil
}

func (s *Server) didSave(ctx context.Context, v *view, p *protocol.DidSaveTextDocumentParams) (any, error) {
	return nil, nil // the text arrives by didChange; nothing to do on save
}

// observeTyping records an edit of uri for the adaptive debounce.
func (s *Server) observeTyping(uri protocol.DocumentURI) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.typing[uri]
	if p == nil {
		p = &typingPace{}
		s.typing[uri] = p
	}
	p.observe(time.Now())
}

// debounce waits before a completion for uri, as long as the user's typing
// pace suggests another keystroke is coming; a newer request cancels ctx.
func (s *Server) debounce(ctx context.Context, uri protocol.DocumentURI, max time.Duration) error {
	s.mu.Lock()
	var d time.Duration
	if p := s.typing[uri]; p != nil {
		d = p.delay(time.Now(), max)
	}
	s.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
