package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/diffill/diffill/lsp"
)

// A --listen server is reachable by every user of the machine (TCP), or by
// whoever can open its socket file (Unix). So: a Unix socket is made 0600 in
// a 0700 directory, and is the transport to prefer; TCP requires a token,
// kept in a 0600 file, that clients send as initializationOptions.token.

// isUnixListen reports whether --listen names a Unix socket: "unix",
// "unix:PATH", or a path (it has a slash, or ends in .sock).
func isUnixListen(s string) (path string, ok bool) {
	switch {
	case s == "unix":
		return defaultSocketPath(), true
	case strings.HasPrefix(s, "unix:"):
		return strings.TrimPrefix(s, "unix:"), true
	case strings.Contains(s, "/"), strings.HasSuffix(s, ".sock"):
		return s, true
	}
	return "", false
}

// defaultSocketPath is the per-user socket: in $XDG_RUNTIME_DIR (a 0700
// directory of the user's), else in a diffill directory of the temp dir.
func defaultSocketPath() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "diffill", "diffill.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("diffill-%d", os.Getuid()), "diffill.sock")
}

// listenUnix listens on a Unix socket only its user can connect to. A stale
// socket file (no server behind it) is replaced; a live one is an error.
func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o077 != 0 && dir != os.TempDir() {
		// Others may be able to replace the socket in a shared directory.
		if err := os.Chmod(dir, st.Mode().Perm()&0o700); err != nil {
			return nil, fmt.Errorf("socket directory %s is open to other users and cannot be made private: %w", dir, err)
		}
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket: choose another path", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("a server is already listening on %s", path)
		}
		os.Remove(path) // stale: its server is gone
	}
	// The umask makes the socket 0600 from the start; chmod makes sure.
	var ln net.Listener
	err := withUmask(0o177, func() (err error) {
		ln, err = net.Listen("unix", path)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket permissions: %w", err)
	}
	return ln, nil
}

// defaultTokenFile is where a TCP server keeps its token.
func defaultTokenFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "diffill", "serve-token")
}

// loadToken reads the token file, creating it (0600, 32 random bytes in
// hex) if it does not exist. A token file others can read is refused: the
// token would protect nothing.
func loadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", err
		}
		tok := hex.EncodeToString(raw[:])
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		_, werr := io.WriteString(f, tok+"\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return "", fmt.Errorf("token file: %w", werr)
		}
		return tok, nil
	}
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s can be read by other users (mode %v): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("token file %s holds %d characters: use at least 16 (or delete it for a new random token)", path, len(tok))
	}
	return tok, nil
}

// serveListener serves each connection as its own session until ctx ends.
// A failed Accept (too many open files, say) is retried after a pause that
// doubles up to a second, as net/http does, instead of stopping the server.
func serveListener(ctx context.Context, ln net.Listener, log *zap.Logger, newServer func() *lsp.Server) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	var pause time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("in", pause))
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		pause = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			log.Info("session started", zap.String("remote", conn.RemoteAddr().String()))
			err := newServer().Serve(ctx, conn)
			log.Info("session ended", zap.String("remote", conn.RemoteAddr().String()), zap.Error(err))
		}()
	}
}
