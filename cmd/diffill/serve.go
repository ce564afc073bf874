package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/diffill/diffill/infill/workspace"
	"github.com/diffill/diffill/lsp"
	"github.com/diffill/diffill/lsp/settings"
)

// runServe runs the language server: on stdio, or on a loopback TCP port
// with --listen, one session per connection.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diffill serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: diffill serve [flags]

Runs the diffill language server. Editors start it and speak LSP on its stdin
and stdout; with --listen it serves LSP on a TCP address instead. The model
loads on the first request that needs it.

Flags:
`)
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "", "serve on this `address` instead of stdio: \"unix\" (a 0600 socket in $XDG_RUNTIME_DIR/diffill), "+
		"unix:PATH or a PATH (a 0600 Unix socket there), or TCP: PORT or :PORT bind 127.0.0.1, a host that is not loopback is used only when named; "+
		"TCP clients must send the token of --token-file as initializationOptions.token")
	tokenFile := fs.String("token-file", "", "with a TCP --listen: the `file` holding the token clients must send (created 0600 with a random token if missing; default "+defaultTokenFile()+")")
	idle := fs.Duration("idle-timeout", 0, "with --listen: close a session that sends nothing for this `duration` (0: never); a connection must initialize within 10s")
	modelDir := fs.String("model", "", "checkpoint `directory` (default: the built-in model); the editor's diffill.model setting overrides it")
	device := fs.String("device", "auto", "`device` to run the model on (the editor's diffill.device setting overrides it)")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	snippetBytes := fs.Int("snippet-bytes", workspace.DefaultConfig.Budget, "byte budget of the workspace context in every request's canvas (snippets of the document's package and imports; 0: none, the default, as the built-in model gains nothing from it)")
	logFile := fs.String("log-file", "", "append the log to this `file` instead of stderr (the log never goes to stdout)")
	engineURL := fs.String("engine", "", "run requests on another diffill's `serve --http` at this `URL` instead of a local model (its token in $"+envEngineToken+"); the editor's diffill.model setting may name a URL too")
	httpAddr := fs.String("http", "", "serve HTTP completions on this `address` instead of LSP (llama.cpp's /infill, /v1/completions, /v1/fim/completions, /diffill/infill): PORT or :PORT bind 127.0.0.1, a host that is not loopback is used only when named and with --http-token-file")
	httpToken := fs.String("http-token-file", "", "with --http: the `file` holding the bearer token clients must send (created 0600 with a random token if missing); required beyond loopback")
	httpQueue := fs.Int("http-queue", 16, "with --http: how many requests may wait behind the running one; more get 503 with Retry-After")
	httpTimeout := fs.Duration("http-timeout", 30*time.Second, "with --http: the most a request may wait and run")
	httpMaxBody := fs.Int64("http-max-body", 4<<20, "with --http: the largest request body in `bytes`")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "diffill serve: unexpected argument %q\nRun 'diffill serve -h' for its flags.\n", fs.Arg(0))
		return errUsage
	}
	if *engineURL != "" {
		if !isRemoteEngine(*engineURL) {
			return fmt.Errorf("--engine %q: want an http:// or https:// URL of a `diffill serve --http`", *engineURL)
		}
		if *modelDir != "" {
			return fmt.Errorf("--engine and --model: choose one (the remote server has its own model)")
		}
		*modelDir = *engineURL
	} else if err := checkModelFlags(*modelDir, *device); err != nil {
		// A bad --model is said now, not at the editor's first keystroke.
		return err
	}
	log, closeLog, err := serveLogger(*logLevel, *logFile, stderr)
	if err != nil {
		return err
	}
	defer closeLog()

	defaults := settings.Default()
	defaults.Model, defaults.Device = *modelDir, *device
	engines := newEngineCache(log.Sugar().Infof)
	wc := workspace.DefaultConfig
	wc.Budget = *snippetBytes
	opts := lsp.Options{Defaults: &defaults, Version: buildVersion(), Context: &wc}

	if *httpAddr != "" {
		if *listen != "" {
			return fmt.Errorf("--http and --listen: choose one (HTTP completions or LSP)")
		}
		if *engineURL != "" {
			return fmt.Errorf("--http and --engine: an HTTP server runs its own model (--model); point editors at the other server instead")
		}
		ln, token, err := listenHTTP(*httpAddr, *httpToken, log)
		if err != nil {
			return err
		}
		auth := "no token"
		if token != "" {
			auth = "clients send 'Authorization: Bearer' with the token in " + *httpToken
		}
		fmt.Fprintf(stderr, "diffill serve: HTTP on http://%s (%s)\n", ln.Addr(), auth)
		s := newHTTPServer(engines, log, httpOptions{Model: *modelDir, Device: *device, Token: token,
			Queue: *httpQueue, Timeout: *httpTimeout, MaxBody: *httpMaxBody})
		return serveHTTP(ctx, ln, s)
	}

	if *listen == "" {
		var conn io.ReadWriteCloser
		if f, ok := stdout.(*os.File); ok && f == os.Stdout {
			if conn, err = lsp.StdioConn(); err != nil {
				return err
			}
		} else {
			conn = lsp.NewConn(os.Stdin, nopCloser{stdout})
		}
		log.Info("serving LSP on stdio", zap.String("model", modelOrBuiltin(*modelDir)))
		err := lsp.NewServer(withRemote(engines.load), log, opts).Serve(ctx, conn)
		if ctx.Err() != nil {
			return nil // interrupted: not the client's fault
		}
		// Exit status 0 after shutdown, 1 otherwise (main prints why).
		return err
	}

	opts.InitializeTimeout, opts.IdleTimeout = 10*time.Second, *idle
	var ln net.Listener
	if path, ok := isUnixListen(*listen); ok {
		if ln, err = listenUnix(path); err != nil {
			return err
		}
		defer os.Remove(path)
		fmt.Fprintf(stderr, "diffill serve: listening on unix:%s (this user only)\n", path)
	} else {
		addr, explicit, err := listenAddr(*listen)
		if err != nil {
			return err
		}
		if *tokenFile == "" {
			*tokenFile = defaultTokenFile()
		}
		if opts.Token, err = loadToken(*tokenFile); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
			if !explicit {
				ln.Close()
				return fmt.Errorf("refusing to serve on %s, which is not a loopback address; name the host explicitly to allow it", ln.Addr())
			}
			log.Warn("serving on a non-loopback address: the token is all that protects it, and the code sent travels unencrypted", zap.Stringer("addr", ln.Addr()))
		}
		fmt.Fprintf(stderr, "diffill serve: listening on %s; clients send the token in %s as initializationOptions.token\n", ln.Addr(), *tokenFile)
	}
	defer ln.Close()
	log.Info("listening", zap.Stringer("addr", ln.Addr()))
	return serveListener(ctx, ln, log, func() *lsp.Server { return lsp.NewServer(withRemote(engines.load), log, opts) })
}

// listenAddr turns --listen into an address: "PORT" and ":PORT" bind the
// loopback interface; an address with a host is used as named (explicit).
func listenAddr(s string) (addr string, explicit bool, err error) {
	if _, perr := strconv.ParseUint(s, 10, 16); perr == nil {
		return net.JoinHostPort("127.0.0.1", s), false, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", false, fmt.Errorf("--listen %q: want PORT, :PORT or HOST:PORT: %w", s, err)
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), false, nil
	}
	return s, true, nil
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// serveLogger logs to stderr, or appends to file: never to stdout, which
// carries the protocol.
func serveLogger(level, file string, stderr io.Writer) (*zap.Logger, func(), error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	out := zapcore.AddSync(stderr)
	closeLog := func() {}
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("--log-file: %w", err)
		}
		out = zapcore.AddSync(f)
		closeLog = func() { f.Close() }
	}
	enc := zap.NewDevelopmentEncoderConfig()
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(out), lvl)
	log := zap.New(core).Named("serve")
	return log, func() { _ = log.Sync(); closeLog() }, nil
}

func modelOrBuiltin(dir string) string {
	if dir == "" {
		return "built-in"
	}
	return dir
}

// buildVersion is the module version the binary was built from.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && !strings.HasPrefix(bi.Main.Version, "(") {
		return bi.Main.Version
	}
	return "dev"
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
