package lsp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/lsp/fake"
)

// TestNeovimEndToEnd builds diffill and runs Neovim headless as the real
// LSP client against `diffill serve` (testdata/nvim/e2e.lua): completion at
// a point, inline completion, "Fill holes" and "Rewrite selection" through
// code actions, commands and Neovim's own workspace/applyEdit, and a
// cancelled command. It needs nvim (Debian's 0.7 or newer); without it the
// test skips, unless DIFFILL_E2E=1 (CI), where it fails.
func TestNeovimEndToEnd(t *testing.T) {
	nvim, err := exec.LookPath("nvim")
	if err != nil {
		if os.Getenv("DIFFILL_E2E") == "1" {
			t.Fatal("DIFFILL_E2E=1 but nvim is not installed (apt-get install -y neovim)")
		}
		t.Skip("nvim not installed (apt-get install -y neovim); set DIFFILL_E2E=1 to make this a failure")
	}
	if testing.Short() {
		t.Skip("builds the binary and starts Neovim; skipped with -short")
	}
	work := t.TempDir()
	bin := buildDiffill(t)
	script, _ := filepath.Abs(filepath.Join("testdata", "nvim", "e2e.lua"))
	model, _ := filepath.Abs(tinyDir)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nvim, "--headless", "--clean", "-n", "-i", "NONE", "-c", "luafile "+script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "DIFFILL_BIN="+bin, "DIFFILL_MODEL="+model, "DIFFILL_WORK="+work, "HOME="+work,
		"XDG_STATE_HOME="+work, "XDG_DATA_HOME="+work, "XDG_CACHE_HOME="+work)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	t.Logf("nvim output:\n%s", out.String())
	if runErr != nil || !strings.Contains(out.String(), "DONE") {
		if log, err := os.ReadFile(filepath.Join(work, "server.log")); err == nil {
			t.Logf("server log:\n%s", log)
		}
		t.Fatalf("Neovim end-to-end run failed: %v", runErr)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "FAIL") {
			t.Error(line)
		}
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// buildDiffill builds the diffill binary once per test run.
func buildDiffill(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "diffill-bin")
		if buildErr != nil {
			return
		}
		gocmd := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gocmd); err != nil {
			gocmd = "go"
		}
		cmd := exec.Command(gocmd, "build", "-o", filepath.Join(buildDir, "diffill"), "github.com/diffill/diffill/cmd/diffill")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "diffill")
}

// TestServeProcess runs the built binary as an editor would: exit status
// 0 after shutdown and exit, 1 after exit alone; logs on stderr only, and
// stdout holds nothing but LSP frames.
func TestServeProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := buildDiffill(t)
	model, _ := filepath.Abs(tinyDir)
	for _, tt := range []struct {
		name     string
		shutdown bool
		code     int
	}{
		{"shutdown then exit", true, 0},
		{"exit alone", false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "serve", "--model", model)
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			c := fake.New(NewConn(stdout, stdin))
			ctx := ctxT(t)
			if _, err := c.Initialize(ctx, fake.InitOptions{}); err != nil {
				t.Fatal(err)
			}
			c.Open("file:///a.go", "go", goSource)
			var list protocol.CompletionList
			if err := c.Call(ctx, protocol.MethodTextDocumentCompletion, completionParams("file:///a.go", protocol.Position{Line: 6, Character: 16}), &list); err != nil {
				t.Fatal(err)
			}
			if tt.shutdown {
				if err := c.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				c.Notify(protocol.MethodExit, nil)
			}
			err := cmd.Wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if errs := c.WireErrors(); len(errs) > 0 {
				t.Errorf("stdout held something other than LSP frames: %v", errs)
			}
			if !strings.Contains(stderr.String(), "initialize") {
				t.Errorf("no log on stderr:\n%s", stderr.String())
			}
		})
	}
}

// TestServeListen serves over loopback TCP (--listen 127.0.0.1:0) and runs
// a session over it.
func TestServeListen(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := buildDiffill(t)
	model, _ := filepath.Abs(tinyDir)
	tokenFile := filepath.Join(t.TempDir(), "token")
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--model", model, "--token-file", tokenFile)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("serve --listen after interrupt: %v", err)
		}
	}()
	sc := bufio.NewScanner(stderr)
	var addr string
	for sc.Scan() {
		if _, a, ok := strings.Cut(sc.Text(), "listening on "); ok {
			addr = strings.TrimSpace(a)
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	if addr == "" {
		t.Fatal("serve --listen did not say where it listens")
	}
	if addr, _, _ = strings.Cut(addr, ";"); addr == "" {
		t.Fatal("no address")
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatalf("the server made no token file: %v", err)
	}
	if st, _ := os.Stat(tokenFile); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	// Without the token, or with a wrong one, initialize is refused and
	// the connection closed.
	for _, tok := range []any{nil, "0123456789abcdef0123456789abcdef"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := fake.New(conn)
		_, err = c.Initialize(ctxT(t), fake.InitOptions{InitializationOptions: map[string]any{"token": tok}})
		if err == nil || !strings.Contains(err.Error(), "token") {
			t.Fatalf("initialize with token %v: %v", tok, err)
		}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the server kept a session that sent the wrong token")
		}
		c.Close()
	}
	for i := 0; i < 2; i++ { // two sessions, one after the other
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := fake.New(conn)
		ctx := ctxT(t)
		if _, err := c.Initialize(ctx, fake.InitOptions{InitializationOptions: map[string]any{"token": strings.TrimSpace(string(token))}}); err != nil {
			t.Fatal(err)
		}
		c.Open("file:///a.go", "go", goSource)
		if err := c.Call(ctx, protocol.MethodTextDocumentCompletion, completionParams("file:///a.go", protocol.Position{Line: 6, Character: 16}), nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}
