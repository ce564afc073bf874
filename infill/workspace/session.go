package workspace

import (
	"path/filepath"
	"sync"
)

// Session is the workspaces of one client (an editor session, a command
// line run): one per module root, made when a file of it is first asked
// about.
type Session struct {
	opt Options

	mu   sync.Mutex
	wss  map[string]*Workspace
	memo preludeMemo
}

// NewSession returns an empty Session.
func NewSession(o Options) *Session {
	return &Session{opt: o, wss: map[string]*Workspace{}}
}

// For returns the workspace of path's module, starting it if needed.
func (s *Session) For(path string) *Workspace {
	root := FindRoot(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.wss[root]
	if w == nil {
		w = New(root, s.opt)
		s.wss[root] = w
	}
	return w
}

// SetOverlay gives path's workspace the open document's text.
func (s *Session) SetOverlay(path, text string) { s.For(path).SetOverlay(path, text) }

// SetLargeOverlay tells path's workspace that the open document has size
// bytes, too many to parse (see Workspace.SetLargeOverlay).
func (s *Session) SetLargeOverlay(path string, size int) { s.For(path).SetLargeOverlay(path, size) }

// MaxFileBytes is the largest file a workspace parses.
func (s *Session) MaxFileBytes() int { return s.opt.withDefaults().MaxFileBytes }

// ClearOverlay puts path back to the disk's text.
func (s *Session) ClearOverlay(path string) { s.For(path).ClearOverlay(path) }

// Open returns the text of every open document (path -> text) of every
// workspace.
func (s *Session) Open() map[string]string {
	s.mu.Lock()
	wss := make([]*Workspace, 0, len(s.wss))
	for _, w := range s.wss {
		wss = append(wss, w)
	}
	s.mu.Unlock()
	out := map[string]string{}
	for _, w := range wss {
		w.mu.Lock()
		for p, t := range w.overlays {
			out[p] = t
		}
		w.mu.Unlock()
	}
	return out
}

// Close stops every workspace.
func (s *Session) Close() {
	s.mu.Lock()
	wss := s.wss
	s.wss = map[string]*Workspace{}
	s.mu.Unlock()
	for _, w := range wss {
		w.Close()
	}
}

// Root returns the module root the session uses for path.
func (s *Session) Root(path string) string { return s.For(filepath.Clean(path)).Root() }
