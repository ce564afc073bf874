package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/lsp"
	"github.com/diffill/diffill/lsp/fake"
	"github.com/diffill/diffill/lsp/settings"
)

func tinyServer(t *testing.T, opts lsp.Options) func() *lsp.Server {
	dirs := tinyCopies(t, 1)
	defaults := settings.Default()
	defaults.Model, defaults.Device = dirs[0], "cpu"
	opts.Defaults = &defaults
	c := newEngineCache(nil)
	return func() *lsp.Server { return lsp.NewServer(c.load, zap.NewNop(), opts) }
}

// session runs initialize, a completion and shutdown over conn.
func session(t *testing.T, conn net.Conn, init map[string]any) {
	t.Helper()
	c := fake.New(conn)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Initialize(ctx, fake.InitOptions{InitializationOptions: init}); err != nil {
		t.Fatal(err)
	}
	uri := protocol.DocumentURI("file:///a.go")
	c.Open(uri, "go", "package a\n\nfunc f() {\n\tx := \n}\n")
	if err := c.Call(ctx, protocol.MethodTextDocumentCompletion, map[string]any{
		"textDocument": map[string]any{"uri": uri}, "position": map[string]any{"line": 3, "character": 6},
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestUnixSocket: the socket and its directory are private to the user; a
// stale socket is replaced, a live one refused; a session runs over it.
func TestUnixSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "diffill.sock")
	ln, err := listenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, st.Mode().Perm(), err, want)
		}
	}
	if _, err := listenUnix(path); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("a second server on a live socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveListener(ctx, ln, zap.NewNop(), tinyServer(t, lsp.Options{})) }()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	session(t, conn, nil)
	cancel()
	<-done
	// The server is gone but its socket file stays (killed, say): stale.
	ln2, err := listenUnix(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	ln2.Close()
}

// flakyListener fails its first Accepts as a process out of descriptors
// does.
type flakyListener struct {
	net.Listener
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptRetried: Accept errors (too many open files) pause the
// listener, which then serves again; it used to stop for good.
func TestAcceptRetried(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner, fails: 5}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serveListener(ctx, ln, zap.NewNop(), tinyServer(t, lsp.Options{})) }()
	conn, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	session(t, conn, nil)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serveListener: %v", err)
	}
}

// TestSilentConnectionClosed: a connection that never initializes is
// closed after the initialize timeout instead of held for ever; a session
// idle past the idle timeout too.
func TestSilentConnectionClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go serveListener(ctx, ln, zap.NewNop(), tinyServer(t, lsp.Options{InitializeTimeout: 300 * time.Millisecond, IdleTimeout: 600 * time.Millisecond}))
	for _, initialize := range []bool{false, true} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := fake.New(conn)
		if initialize {
			if _, err := c.Initialize(ctx, fake.InitOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-c.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("initialized %v: the server kept a silent connection", initialize)
		}
		c.Close()
	}
}

// TestTokenFile: a token file is made private with a random token, reused,
// and refused when others can read it.
func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "serve-token")
	tok, err := loadToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); len(tok) != 64 || st.Mode().Perm() != 0o600 {
		t.Fatalf("token %q, mode %v", tok, st.Mode().Perm())
	}
	if again, err := loadToken(path); err != nil || again != tok {
		t.Fatalf("second load: %q, %v", again, err)
	}
	os.Chmod(path, 0o644)
	if _, err := loadToken(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v", err)
	}
}
