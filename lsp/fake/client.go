// Package fake is the editor's side of LSP, for tests and benchmarks of the
// diffill language server: a client that keeps its own copy of each open
// document, sends didOpen/didChange as an editor does, answers the server's
// requests (applying workspace edits to its documents, with the version
// check a real editor makes) and records the server's notifications so that
// tests can wait for them.
//
// It speaks jsonrpc2's messages over a jsonrpc2.Stream, but keeps its own
// request ids rather than using jsonrpc2.Conn, so that a test can cancel a
// request it has sent and still read the server's answer to it.
package fake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/lsp/document"
	"github.com/diffill/diffill/lsp/wire"
)

// Note is a notification from the server.
type Note struct {
	Method string
	Params json.RawMessage
	At     time.Time
}

// Client is a fake editor connected to a server.
type Client struct {
	stream jsonrpc2.Stream
	conn   io.Closer
	wmu    sync.Mutex

	mu          sync.Mutex
	next        int32
	pending     map[jsonrpc2.ID]chan *jsonrpc2.Response
	docs        map[protocol.DocumentURI]*document.Document
	notes       []Note
	changed     chan struct{} // closed and replaced when a note arrives
	enc         document.Encoding
	settings    json.RawMessage
	refuseEdits bool       // workspace/applyEdit answers applied: false
	applyHook   func()     // runs when workspace/applyEdit arrives
	sendMu      sync.Mutex // keeps didChange in version order, without holding mu while writing

	wireErrs []string          // messages from the server that were not well-formed
	edits    []json.RawMessage // workspace/applyEdit params received

	done chan struct{}
	err  error
}

// AppliedEdits returns the params of every workspace/applyEdit received,
// applied or not.
func (c *Client) AppliedEdits() []json.RawMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.edits)
}

// WireErrors returns what was wrong with the messages from the server that
// could not be read as requests, responses or notifications; an error
// response to a message the server could not read has no id and lands
// here.
func (c *Client) WireErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.wireErrs)
}

// New starts a client on conn (the server's stdin and stdout, or one end of
// a pipe whose other end a server serves).
func New(conn io.ReadWriteCloser) *Client {
	c := &Client{
		conn:    conn,
		pending: map[jsonrpc2.ID]chan *jsonrpc2.Response{},
		docs:    map[protocol.DocumentURI]*document.Document{},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	// The server's framing, which survives what jsonrpc2's own stream
	// does not (an error response with a null id, for one).
	c.stream = wire.NewStream(conn, wire.OnError(func(err error) {
		c.mu.Lock()
		c.wireErrs = append(c.wireErrs, err.Error())
		c.mu.Unlock()
	}))
	go c.read()
	return c
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// SetSettings sets what the client answers to workspace/configuration.
func (c *Client) SetSettings(raw json.RawMessage) {
	c.mu.Lock()
	c.settings = raw
	c.mu.Unlock()
}

// RefuseEdits makes the client refuse (or accept) workspace/applyEdit.
func (c *Client) RefuseEdits(refuse bool) {
	c.mu.Lock()
	c.refuseEdits = refuse
	c.mu.Unlock()
}

// BeforeApplyEdit sets a function run when workspace/applyEdit arrives,
// before the client looks at the edit.
func (c *Client) BeforeApplyEdit(f func()) {
	c.mu.Lock()
	c.applyHook = f
	c.mu.Unlock()
}

func (c *Client) read() {
	defer close(c.done)
	for {
		msg, _, err := c.stream.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		switch m := msg.(type) {
		case *jsonrpc2.Response:
			c.mu.Lock()
			ch := c.pending[m.ID()]
			delete(c.pending, m.ID())
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		case *jsonrpc2.Call:
			// Answer on a goroutine: applying an edit sends didChange,
			// and the read loop must keep reading meanwhile.
			go c.serve(m)
		case *jsonrpc2.Notification:
			c.mu.Lock()
			c.notes = append(c.notes, Note{Method: m.Method(), Params: m.Params(), At: time.Now()})
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}
}

func (c *Client) write(msg jsonrpc2.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.stream.Write(context.Background(), msg)
	return err
}

// Pending is a request sent and not yet answered.
type Pending struct {
	ID     jsonrpc2.ID
	Method string
	Sent   time.Time
	c      *Client
	ch     chan *jsonrpc2.Response
}

// Start sends a request.
func (c *Client) Start(method string, params any) (*Pending, error) {
	c.mu.Lock()
	c.next++
	id := jsonrpc2.NewNumberID(c.next)
	ch := make(chan *jsonrpc2.Response, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	call, err := jsonrpc2.NewCall(id, method, params)
	if err != nil {
		return nil, err
	}
	p := &Pending{ID: id, Method: method, Sent: time.Now(), c: c, ch: ch}
	if err := c.write(call); err != nil {
		return nil, fmt.Errorf("sending %s: %w", method, err)
	}
	return p, nil
}

// Cancel sends $/cancelRequest for the request.
func (p *Pending) Cancel() error {
	id := p.ID // ID marshals through a pointer method
	return p.c.Notify(protocol.MethodCancelRequest, map[string]any{"id": &id})
}

// Wait waits for the answer and decodes its result into result (if not
// nil). A JSON-RPC error comes back as a *jsonrpc2.Error.
func (p *Pending) Wait(ctx context.Context, result any) error {
	select {
	case resp, ok := <-p.ch:
		if !ok {
			return fmt.Errorf("%s: connection closed", p.Method)
		}
		if resp.Err() != nil {
			return resp.Err()
		}
		if result != nil {
			if err := json.Unmarshal(resp.Result(), result); err != nil {
				return fmt.Errorf("%s: decoding result %s: %w", p.Method, resp.Result(), err)
			}
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Call sends a request and waits for its answer; if ctx ends first it
// cancels the request.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	p, err := c.Start(method, params)
	if err != nil {
		return err
	}
	err = p.Wait(ctx, result)
	if ctx.Err() != nil {
		_ = p.Cancel()
	}
	return err
}

// Notify sends a notification.
func (c *Client) Notify(method string, params any) error {
	n, err := jsonrpc2.NewNotification(method, params)
	if err != nil {
		return err
	}
	return c.write(n)
}

// Code returns the JSON-RPC error code of err, or 0.
func Code(err error) jsonrpc2.Code {
	var e *jsonrpc2.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Notes returns the notifications of method received so far ("" for all).
func (c *Client) Notes(method string) []Note {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Note
	for _, n := range c.notes {
		if method == "" || n.Method == method {
			out = append(out, n)
		}
	}
	return out
}

// ClearNotes forgets the notifications received so far.
func (c *Client) ClearNotes() {
	c.mu.Lock()
	c.notes = nil
	c.mu.Unlock()
}

// Await waits for a notification of method for which match (if not nil)
// returns true, received at any time since the last ClearNotes.
func (c *Client) Await(ctx context.Context, method string, match func(Note) bool) (Note, error) {
	seen := 0
	for {
		c.mu.Lock()
		notes, changed := c.notes, c.changed
		c.mu.Unlock()
		for ; seen < len(notes); seen++ {
			if n := notes[seen]; n.Method == method && (match == nil || match(n)) {
				return n, nil
			}
		}
		select {
		case <-changed:
		case <-c.done:
			return Note{}, fmt.Errorf("awaiting %s: connection closed", method)
		case <-ctx.Done():
			return Note{}, fmt.Errorf("awaiting %s: %w", method, ctx.Err())
		}
	}
}

// serve answers a request from the server.
func (c *Client) serve(call *jsonrpc2.Call) {
	var result any
	var err error
	switch call.Method() {
	case protocol.MethodWorkDoneProgressCreate, protocol.MethodClientRegisterCapability,
		protocol.MethodClientUnregisterCapability, protocol.MethodWindowShowMessageRequest:
	case protocol.MethodWorkspaceConfiguration:
		var p protocol.ConfigurationParams
		_ = json.Unmarshal(call.Params(), &p)
		c.mu.Lock()
		s := c.settings
		c.mu.Unlock()
		if s == nil {
			s = json.RawMessage("null")
		}
		out := make([]json.RawMessage, len(p.Items))
		for i := range out {
			out[i] = s
		}
		result = out
	case protocol.MethodWorkspaceApplyEdit:
		result, err = c.applyEdit(call.Params())
	default:
		err = jsonrpc2.Errorf(jsonrpc2.MethodNotFound, "fake client does not serve %s", call.Method())
	}
	resp, rerr := jsonrpc2.NewResponse(call.ID(), result, err)
	if rerr == nil {
		_ = c.write(resp)
	}
}

type applyResult struct {
	Applied       bool   `json:"applied"`
	FailureReason string `json:"failureReason,omitempty"`
}

// applyEdit applies a workspace edit as an editor does: a versioned edit
// for a document whose version has moved on is refused.
func (c *Client) applyEdit(raw json.RawMessage) (*applyResult, error) {
	c.mu.Lock()
	c.edits = append(c.edits, raw)
	c.mu.Unlock()
	var p struct {
		Edit struct {
			Changes         map[protocol.DocumentURI][]protocol.TextEdit `json:"changes"`
			DocumentChanges []struct {
				TextDocument struct {
					URI     protocol.DocumentURI `json:"uri"`
					Version *int32               `json:"version"`
				} `json:"textDocument"`
				Edits []protocol.TextEdit `json:"edits"`
			} `json:"documentChanges"`
		} `json:"edit"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "bad applyEdit: %v", err)
	}
	c.mu.Lock()
	hook, refuse := c.applyHook, c.refuseEdits
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	if refuse {
		return &applyResult{FailureReason: "refused by the test"}, nil
	}
	for _, dc := range p.Edit.DocumentChanges {
		c.mu.Lock()
		d := c.docs[dc.TextDocument.URI]
		c.mu.Unlock()
		if d == nil {
			return &applyResult{FailureReason: "document not open: " + string(dc.TextDocument.URI)}, nil
		}
		if dc.TextDocument.Version != nil && *dc.TextDocument.Version != d.Version {
			return &applyResult{FailureReason: fmt.Sprintf("document version %d, edit for version %d", d.Version, *dc.TextDocument.Version)}, nil
		}
		if err := c.EditText(dc.TextDocument.URI, dc.Edits); err != nil {
			return &applyResult{FailureReason: err.Error()}, nil
		}
	}
	for uri, edits := range p.Edit.Changes {
		if err := c.EditText(uri, edits); err != nil {
			return &applyResult{FailureReason: err.Error()}, nil
		}
	}
	return &applyResult{Applied: true}, nil
}

// InitOptions shape the initialize request.
type InitOptions struct {
	// PositionEncodings offered (3.17); nil offers none (UTF-16).
	PositionEncodings []string
	// InitializationOptions are sent as is.
	InitializationOptions any
	// NoConfiguration turns off workspace/configuration support.
	NoConfiguration bool
	// NoDocumentChanges turns off versioned workspace edits.
	NoDocumentChanges bool
}

// InitializeResult is the part of the server's answer tests look at.
type InitializeResult struct {
	Capabilities struct {
		PositionEncoding         string          `json:"positionEncoding"`
		TextDocumentSync         json.RawMessage `json:"textDocumentSync"`
		CompletionProvider       json.RawMessage `json:"completionProvider"`
		InlineCompletionProvider json.RawMessage `json:"inlineCompletionProvider"`
		CodeActionProvider       json.RawMessage `json:"codeActionProvider"`
		ExecuteCommandProvider   struct {
			Commands []string `json:"commands"`
		} `json:"executeCommandProvider"`
	} `json:"capabilities"`
	ServerInfo struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"serverInfo"`
}

// Initialize sends initialize and initialized.
func (c *Client) Initialize(ctx context.Context, o InitOptions) (*InitializeResult, error) {
	caps := map[string]any{
		"general": map[string]any{"positionEncodings": o.PositionEncodings},
		"workspace": map[string]any{
			"applyEdit":              true,
			"workspaceEdit":          map[string]any{"documentChanges": !o.NoDocumentChanges},
			"configuration":          !o.NoConfiguration,
			"didChangeConfiguration": map[string]any{"dynamicRegistration": true},
		},
		"window": map[string]any{"workDoneProgress": true},
		"textDocument": map[string]any{
			"completion":       map[string]any{"completionItem": map[string]any{"snippetSupport": false}},
			"inlineCompletion": map[string]any{},
		},
	}
	params := map[string]any{
		"processId":             nil,
		"clientInfo":            map[string]string{"name": "diffill-fake", "version": "1"},
		"rootUri":               nil,
		"capabilities":          caps,
		"initializationOptions": o.InitializationOptions,
	}
	var res InitializeResult
	if err := c.Call(ctx, protocol.MethodInitialize, params, &res); err != nil {
		return nil, err
	}
	enc, ok := document.ParseEncoding(res.Capabilities.PositionEncoding)
	if !ok {
		enc = document.UTF16
	}
	c.mu.Lock()
	c.enc = enc
	c.mu.Unlock()
	if err := c.Notify(protocol.MethodInitialized, struct{}{}); err != nil {
		return nil, err
	}
	return &res, nil
}

// Shutdown sends shutdown and exit.
func (c *Client) Shutdown(ctx context.Context) error {
	if err := c.Call(ctx, protocol.MethodShutdown, nil, nil); err != nil {
		return err
	}
	return c.Notify(protocol.MethodExit, nil)
}

// Encoding returns the negotiated position encoding.
func (c *Client) Encoding() document.Encoding {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc
}

// Open opens a document.
func (c *Client) Open(uri protocol.DocumentURI, languageID, text string) error {
	d := document.New(uri, languageID, 1, text)
	c.mu.Lock()
	c.docs[uri] = d
	c.mu.Unlock()
	return c.Notify(protocol.MethodTextDocumentDidOpen, &protocol.DidOpenTextDocumentParams{TextDocument: protocol.TextDocumentItem{
		URI: uri, LanguageID: protocol.LanguageIdentifier(languageID), Version: 1, Text: text,
	}})
}

// CloseDoc closes a document.
func (c *Client) CloseDoc(uri protocol.DocumentURI) error {
	c.mu.Lock()
	delete(c.docs, uri)
	c.mu.Unlock()
	return c.Notify(protocol.MethodTextDocumentDidClose, &protocol.DidCloseTextDocumentParams{TextDocument: protocol.TextDocumentIdentifier{URI: uri}})
}

// Doc returns the client's copy of a document.
func (c *Client) Doc(uri protocol.DocumentURI) *document.Document {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.docs[uri]
}

// Change applies changes to the client's copy, bumps its version and sends
// them in didChange.
func (c *Client) Change(uri protocol.DocumentURI, changes ...document.Change) error {
	// sendMu, not mu, is held while writing: the read loop needs mu to
	// take in what the server sends meanwhile.
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.mu.Lock()
	d := c.docs[uri]
	if d == nil {
		c.mu.Unlock()
		return fmt.Errorf("%s is not open", uri)
	}
	next, err := d.Apply(changes, d.Version+1, c.enc, 0)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.docs[uri] = next
	c.mu.Unlock()
	return c.Notify(protocol.MethodTextDocumentDidChange, map[string]any{
		"textDocument":   map[string]any{"uri": uri, "version": next.Version},
		"contentChanges": changes,
	})
}

// Type inserts text at pos, as one change.
func (c *Client) Type(uri protocol.DocumentURI, pos protocol.Position, text string) error {
	return c.Change(uri, document.Change{Range: &protocol.Range{Start: pos, End: pos}, Text: text})
}

// EditText applies text edits (all relative to the current text, as in a
// workspace edit) and sends them as one didChange.
func (c *Client) EditText(uri protocol.DocumentURI, edits []protocol.TextEdit) error {
	// As content changes they apply in turn; from the last to the first,
	// each range is still valid when its turn comes.
	edits = slices.Clone(edits)
	sort.SliceStable(edits, func(i, j int) bool {
		a, b := edits[i].Range.Start, edits[j].Range.Start
		return a.Line > b.Line || a.Line == b.Line && a.Character > b.Character
	})
	changes := make([]document.Change, len(edits))
	for i, e := range edits {
		r := e.Range
		changes[i] = document.Change{Range: &r, Text: e.NewText}
	}
	return c.Change(uri, changes...)
}

// Pos returns the position of byte offset off of the client's copy of the
// document, in the negotiated encoding.
func (c *Client) Pos(uri protocol.DocumentURI, off int) protocol.Position {
	d := c.Doc(uri)
	return d.Position(off, c.Encoding())
}

// WriteRaw writes bytes to the server as they are, for tests of framing.
func (c *Client) WriteRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w, ok := c.conn.(io.Writer)
	if !ok {
		return errors.New("connection is not writable")
	}
	_, err := w.Write(b)
	return err
}
