package lsp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/infill/workspace"
	"github.com/diffill/diffill/lsp/document"
	"github.com/diffill/diffill/lsp/settings"
	"github.com/diffill/diffill/lsp/wire"
)

// Engine fills spans of a document. *infill.Engine satisfies it; a remote
// engine could stand in.
type Engine interface {
	Run(ctx context.Context, req *infill.Request) (*infill.Result, error)
}

// Loader makes the engine for a model (a checkpoint directory, or "" for
// the built-in model) on a device ("" or "cpu" for the CPU). The server
// calls it lazily, on the first request that needs a model, and again when
// the user changes either setting.
type Loader func(ctx context.Context, model, device string) (Engine, error)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Defaults are the settings before the client sends any (the command
	// line's --model and --device go here).
	Defaults *settings.Settings
	// MaxDocumentBytes bounds one open document; larger ones are refused
	// with a message, and requests on them answer with an error. 0: 32 MiB.
	MaxDocumentBytes int
	// MaxOpenBytes bounds all open documents together. 0: 256 MiB.
	MaxOpenBytes int
	// MaxMessageBytes bounds one JSON-RPC message. 0: wire.DefaultMaxMessage.
	MaxMessageBytes int64
	// MaxPending bounds requests being served at once; more are refused
	// with RequestFailed until some finish. 0: 256.
	MaxPending int
	// ClientTimeout bounds how long the server waits for the client's
	// answer to a request of its own (workspace/applyEdit,
	// workspace/configuration, ...). 0: 30 s.
	ClientTimeout time.Duration
	// Token, if set, must come as initializationOptions.token in initialize,
	// else the session ends (for servers others on the machine can reach).
	Token string
	// InitializeTimeout ends a session that has not initialized within it;
	// IdleTimeout one that sends nothing for that long. 0: no limit.
	InitializeTimeout, IdleTimeout time.Duration
	// Version is reported in serverInfo.
	Version string
	// Context is the workspace context requests get (snippets of the
	// document's package in the canvas). nil: workspace.DefaultConfig.
	Context *workspace.Config
}

// ErrExitWithoutShutdown is returned by Serve when the client sent exit
// without shutdown first (the process should exit with status 1).
var ErrExitWithoutShutdown = errors.New("exit notification without shutdown request")

// ErrConnectionClosed is returned by Serve when the connection ended
// before shutdown.
var ErrConnectionClosed = errors.New("connection closed before exit")

// Server serves one LSP session. Handlers are thin: they take a snapshot
// of the session (a view), call the engine and convert the result; every
// method the server does not serve is in unimplemented.go.
type Server struct {
	log  *zap.Logger
	load Loader
	opt  Options

	conn     jsonrpc2.Conn
	ctx      context.Context // ends with the session; model loads run under it
	cancel   context.CancelFunc
	wg       sync.WaitGroup // every goroutine the session starts
	requests sync.WaitGroup // requests being served on their own goroutines

	view atomic.Pointer[view] // the current snapshot of documents and settings
	ws   *workspace.Session   // the Go code around the documents (see workspace.go)

	mu       sync.Mutex // guards the fields below, and swaps of view
	state    sessionState
	caps     clientCapabilities
	inflight map[jsonrpc2.ID]*inflightRequest
	latest   map[latestKey]*inflightRequest     // newest completion per document and method
	progress map[string]context.CancelCauseFunc // cancellable work-done tokens
	typing   map[protocol.DocumentURI]*typingPace
	pending  int
	exitErr  chan error
	touched  chan struct{} // a message arrived (for the idle timeout)

	engines engines
	cache   completionCache
	flights flights
	tokens  atomic.Int64 // server-made progress tokens

	engineRuns, cacheHits, joined atomic.Int64 // completions computed, answered from the cache, joined to another's run

	parentPoll time.Duration // how often to check that the editor process lives
}

type sessionState int

const (
	stateNew sessionState = iota
	stateRunning
	stateShutdown
)

// view is an immutable snapshot of the session: what the documents held
// and what the settings were when a request arrived. Handlers that run
// concurrently read their request's view, never the live state.
type view struct {
	docs     *docSet
	settings settings.Settings
	gen      int // increases whenever the settings change
	enc      document.Encoding
}

// docState is an open document, or, when it is over the size limit, the
// reason it is not kept.
type docState struct {
	doc    *document.Document
	broken error // why the text is not kept (too large, or an edit failed)
}

type latestKey struct {
	method string
	uri    protocol.DocumentURI
}

// inflightRequest is a request being served on its own goroutine.
type inflightRequest struct {
	id       jsonrpc2.ID
	method   string
	cancel   context.CancelCauseFunc
	released bool // no longer counted in pending (s.mu)
}

// NewServer returns a server that loads engines with load.
func NewServer(load Loader, log *zap.Logger, opt Options) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	if opt.MaxDocumentBytes == 0 {
		opt.MaxDocumentBytes = 32 << 20
	}
	if opt.MaxOpenBytes == 0 {
		opt.MaxOpenBytes = 256 << 20
	}
	if opt.MaxMessageBytes == 0 {
		opt.MaxMessageBytes = wire.DefaultMaxMessage
	}
	if opt.ClientTimeout == 0 {
		opt.ClientTimeout = 30 * time.Second
	}
	if opt.MaxPending == 0 {
		opt.MaxPending = 256
	}
	defaults := settings.Default()
	if opt.Defaults != nil {
		defaults = *opt.Defaults
	}
	opt.Defaults = &defaults
	s := &Server{
		log:      log,
		load:     load,
		opt:      opt,
		inflight: map[jsonrpc2.ID]*inflightRequest{},
		latest:   map[latestKey]*inflightRequest{},
		progress: map[string]context.CancelCauseFunc{},
		typing:   map[protocol.DocumentURI]*typingPace{},
		exitErr:  make(chan error, 1),
		touched:  make(chan struct{}, 1),

		parentPoll: 5 * time.Second,
		ws:         workspace.NewSession(workspace.Options{}),
	}
	s.view.Store(&view{docs: newDocSet(), settings: defaults})
	return s
}

// Serve runs the session over rwc until the client sends exit, the
// connection closes or ctx ends. It returns nil after shutdown (then exit,
// or the connection closing), ErrExitWithoutShutdown after exit alone, and
// ErrConnectionClosed if the connection ended before shutdown.
func (s *Server) Serve(ctx context.Context, rwc io.ReadWriteCloser) error {
	stream := wire.NewStream(rwc, wire.MaxMessage(s.opt.MaxMessageBytes), wire.OnError(func(err error) {
		s.log.Warn("bad message from client", zap.Error(err))
	}))
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.conn = jsonrpc2.NewConn(stream)
	s.conn.Go(s.ctx, s.handle)
	s.goAsync(func(context.Context) { s.watchIdle(s.touched) })

	var err error
	select {
	case err = <-s.exitErr:
	case <-s.conn.Done():
		s.mu.Lock()
		clean := s.state == stateShutdown
		s.mu.Unlock()
		if !clean {
			err = ErrConnectionClosed
			if cerr := s.conn.Err(); cerr != nil && !errors.Is(cerr, io.EOF) && !errors.Is(cerr, context.Canceled) {
				err = fmt.Errorf("%w: %v", ErrConnectionClosed, cerr)
			}
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.cancel()
	s.conn.Close()
	// A read blocked in the kernel may outlive Close (a blocking pipe):
	// the session is over either way, so do not wait long for it.
	select {
	case <-s.conn.Done():
	case <-time.After(time.Second):
		s.log.Debug("connection reader still blocked after close")
	}
	s.wg.Wait()
	s.ws.Close()
	s.engines.closeAll()
	return err
}

// update swaps in a new view made by f from the current one.
func (s *Server) update(f func(v *view)) *view {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.view.Load()
	v := *old
	f(&v)
	s.view.Store(&v)
	return &v
}

// withDoc returns the view's documents with uri set (or, for nil, removed).
func (v *view) withDoc(uri protocol.DocumentURI, d *docState) *docSet {
	return v.docs.with(uri, d)
}

// errUnknownDocument and friends are the errors a request can hit before
// any engine work; toRPCError maps them to LSP error codes.
var (
	errUnknownDocument = errors.New("document is not open")
	errModified        = errors.New("the document changed while the request was computed; its result was dropped")
	errSuperseded      = errors.New("superseded by a newer request for the same document")
	errCancelled       = errors.New("cancelled by the client")
	errBusy            = errors.New("server busy")
	errShuttingDown    = errors.New("server is shutting down")
)

// lookup returns the open document uri of view v.
func (v *view) lookup(uri protocol.DocumentURI) (*document.Document, error) {
	d, ok := v.docs.get(uri)
	if !ok {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "%s: %v (send textDocument/didOpen first)", uri, errUnknownDocument)
	}
	if d.broken != nil {
		return nil, jsonrpc2.Errorf(codeRequestFailed, "%s: %v", uri, d.broken)
	}
	return d.doc, nil
}

// currentVersion returns the live version of uri, and whether it is open.
func (s *Server) currentVersion(uri protocol.DocumentURI) (int32, bool) {
	d, ok := s.view.Load().docs.get(uri)
	if !ok || d.doc == nil {
		return 0, false
	}
	return d.doc.Version, true
}

// typingPace tracks how fast the user edits a document, for the debounce.
type typingPace struct {
	last     time.Time
	interval time.Duration // moving average of the gaps between edits while typing
}

// observe records an edit at now.
func (p *typingPace) observe(now time.Time) {
	if !p.last.IsZero() {
		gap := now.Sub(p.last)
		// Gaps over two seconds are pauses, not the typing pace.
		if gap < 2*time.Second {
			if p.interval == 0 {
				p.interval = gap
			} else {
				p.interval = (3*p.interval + gap) / 4
			}
		}
	}
	p.last = now
}

// delay returns how long to wait before computing a completion requested at
// now: until one and a half typical gaps have passed since the last edit,
// at most max. A fast typist is likely to type again, and the work would
// be thrown away; a slow one, or a pause, gets an answer at once.
func (p *typingPace) delay(now time.Time, max time.Duration) time.Duration {
	if max <= 0 || p.last.IsZero() {
		return 0
	}
	wait := max
	if p.interval > 0 && 3*p.interval/2 < max {
		wait = 3 * p.interval / 2
	}
	wait -= now.Sub(p.last)
	if wait < 0 {
		return 0
	}
	return wait
}

// callClient sends a request to the client and waits for its answer, at
// most Options.ClientTimeout, and no longer than ctx: a client that never
// answers (or a request the user cancels) releases the server's request
// instead of holding it, and its slot, for good.
func (s *Server) callClient(ctx context.Context, method string, params, result any) error {
	ctx, cancel := context.WithTimeout(ctx, s.opt.ClientTimeout)
	defer cancel()
	_, err := s.conn.Call(ctx, method, params, result)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the editor did not answer %s within %v: %w", method, s.opt.ClientTimeout, err)
	}
	return err
}
