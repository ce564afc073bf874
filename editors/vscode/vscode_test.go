// Package vscode_test runs the extension's unit tests (node:test) and the
// end-to-end test: the packaged .vsix installed in a real VS Code
// (code-server, the VS Code build that runs on Node 20) in Debian's headless
// Chromium driven by playwright-core, against the real `diffill serve`.
//
// editors/ci.sh setup installs the tools and builds the .vsix; without them
// the tests skip, unless DIFFILL_E2E=1 (CI), when they fail.
// DIFFILL_ARTIFACTS=DIR keeps the screenshots there.
package vscode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// need returns what is missing, or skips/fails the test when something is.
func need(t *testing.T, what string, ok bool, fix string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("DIFFILL_E2E") == "1" {
		t.Fatalf("%s is missing and DIFFILL_E2E=1: %s", what, fix)
	}
	t.Skipf("%s is missing: %s", what, fix)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestUnit runs the extension's own unit tests (settings, discovery, command
// arguments, status, manifest) under plain Node.
func TestUnit(t *testing.T) {
	_, err := exec.LookPath("node")
	need(t, "node", err == nil, "install Node.js 20")
	need(t, "editors/vscode/node_modules", exists("node_modules/esbuild"), "run editors/ci.sh setup (npm ci)")
	cmd := exec.Command("npm", "test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm test: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("# fail 0")) {
		t.Fatalf("npm test did not report zero failures:\n%s", out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func buildDiffill(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DIFFILL_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "diffill")
	// go test puts its own go first on PATH.
	out, err := exec.Command("go", "build", "-o", bin, "github.com/diffill/diffill/cmd/diffill").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/diffill: %v\n%s", err, out)
	}
	return bin
}

type e2eResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Steps []struct {
		T      string `json:"t"`
		What   string `json:"what"`
		Detail any    `json:"detail"`
	} `json:"steps"`
}

// editorRun describes one end-to-end run: which scenario of e2e/e2e.js,
// settings over the test's base settings (a nil value removes one), and
// directories put first on the PATH code-server is started with.
type editorRun struct {
	scenario string
	settings map[string]any
	path     []string
	// binOnPath: diffill is found on the PATH the editor was started with,
	// not through diffill.path.
	binOnPath bool
	// remote: settings in the Remote tab (code-server's
	// <user-data-dir>/Machine/settings.json), where machine settings such
	// as diffill.path belong in a remote window.
	remote map[string]any
}

// TestEndToEnd: with VS Code's default editor settings, open a Go file, see
// ghost text from diffill and accept it with Tab while quick suggestions are
// on, run "Diffill: Fill Holes" (one undo restores the holes), "Diffill:
// Rewrite Selection" with and without a selection, "Diffill: Infill
// Selection", change a setting, open the log from the status bar. diffill is
// found on the PATH code-server was started with (the extension host's own
// PATH is the login shell's). Screenshots of each step go to a temporary
// directory.
func TestEndToEnd(t *testing.T) {
	runEditor(t, editorRun{scenario: "main", binOnPath: true})
}

// TestEndToEndBadModel: diffill.model names a directory that does not exist.
// Typing brings one message saying what a model directory holds and how to
// use the built-in model, no toast per keystroke, no output panel popping
// open; the status bar is red with the reason until the setting changes.
func TestEndToEndBadModel(t *testing.T) {
	runEditor(t, editorRun{scenario: "bad-model", settings: map[string]any{"diffill.model": "/nonexistent/diffill-model"}})
}

// TestEndToEndNotFound: diffill.path names no binary. The notification says
// how to build diffill from a clone, and its Open Settings button shows the
// diffill.path setting.
func TestEndToEndNotFound(t *testing.T) {
	runEditor(t, editorRun{scenario: "not-found", settings: map[string]any{"diffill.path": nil}, remote: map[string]any{"diffill.path": "/nonexistent/bin/diffill"}})
}

// TestEndToEndEdits, with the built-in Go model (the tiny checkpoint writes
// no Go): a completion typed inside the ")" VS Code auto-closes replaces it
// (issue 11 item 2); "Diffill: Rewrite Selection" with nothing selected
// rewrites the cursor's line from character 0, keeps its indentation, and
// the function still parses (item 1).
func TestEndToEndEdits(t *testing.T) {
	runEditor(t, editorRun{scenario: "edits", settings: map[string]any{"diffill.model": nil}})
}

func runEditor(t *testing.T, run editorRun) {
	tools := abs(t, "../.e2e/tools/node_modules")
	codeServer := filepath.Join(tools, ".bin", "code-server")
	chromium := os.Getenv("DIFFILL_E2E_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	vsix := abs(t, "diffill.vsix")
	need(t, "code-server", exists(codeServer), "run editors/ci.sh setup")
	need(t, "playwright-core", exists(filepath.Join(tools, "playwright-core")), "run editors/ci.sh setup")
	need(t, "chromium", exists(chromium), "apt-get install -y chromium (or set DIFFILL_E2E_CHROMIUM)")
	need(t, "diffill.vsix", exists(vsix), "run editors/ci.sh setup (npm run package)")
	bin := buildDiffill(t)

	root := t.TempDir()
	ws := filepath.Join(root, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.go", "b.go"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", f+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ws, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ws, "go.mod"), []byte("module example.com/a\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	userData := filepath.Join(root, "user-data")
	// Only what keeps the workbench quiet (from the recipe: no trust dialog,
	// welcome page, tips or updates). The editor's own settings stay VS
	// Code's defaults: quick suggestions on, as a user has them.
	settings := map[string]any{
		"security.workspace.trust.enabled":                 false,
		"workbench.startupEditor":                          "none",
		"workbench.welcomePage.walkthroughs.openOnInstall": false,
		"workbench.tips.enabled":                           false,
		"extensions.autoCheckUpdates":                      false,
		"extensions.autoUpdate":                            false,
		"update.mode":                                      "none",
		"telemetry.telemetryLevel":                         "off",
		"extensions.ignoreRecommendations":                 true,
		"git.enabled":                                      false,
		"diffill.holeMarker":                               "/*?*/",
	}
	path := os.Getenv("PATH")
	if run.binOnPath {
		dir := filepath.Join(root, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(bin, filepath.Join(dir, "diffill")); err != nil {
			t.Fatal(err)
		}
		path = dir + string(os.PathListSeparator) + path
	} else {
		settings["diffill.path"] = bin
	}
	// The tiny Qwen2 checkpoint in model/testdata by default (this test is about
	// the editor, not the model's answers, and it is fast on any CPU);
	// DIFFILL_TEST_MODEL=DIR another checkpoint, =builtin the built-in model.
	tiny := abs(t, filepath.Join("..", "..", "model", "testdata", "qwen2-tiny"))
	switch m := os.Getenv("DIFFILL_TEST_MODEL"); m {
	case "builtin":
	case "":
		settings["diffill.model"] = tiny
	default:
		settings["diffill.model"] = m
	}
	for k, v := range run.settings {
		if v == nil {
			delete(settings, k)
		} else {
			settings[k] = v
		}
	}
	sj, _ := json.MarshalIndent(settings, "", "  ")
	if err := os.MkdirAll(filepath.Join(userData, "User"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(userData, "User", "settings.json"), sj, 0o644); err != nil {
		t.Fatal(err)
	}
	// A second completion source, as every Go user has one: gopls offers the
	// keyword "return" when "ret" is typed. A user snippet stands in for it
	// (VS Code lists snippets beside the language server's items; its own
	// word-based suggestions only fill a list no provider filled).
	if err := os.MkdirAll(filepath.Join(userData, "User", "snippets"), 0o755); err != nil {
		t.Fatal(err)
	}
	snippets := `{"return": {"prefix": "return", "body": "return", "description": "the return keyword, as gopls lists it"}}`
	if err := os.WriteFile(filepath.Join(userData, "User", "snippets", "go.json"), []byte(snippets), 0o644); err != nil {
		t.Fatal(err)
	}
	if run.remote != nil {
		rj, _ := json.MarshalIndent(run.remote, "", "  ")
		if err := os.MkdirAll(filepath.Join(userData, "Machine"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(userData, "Machine", "settings.json"), rj, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(),
		// code-server writes config.yaml and logs under XDG dirs even with --user-data-dir.
		"XDG_CONFIG_HOME="+filepath.Join(root, "xdg", "config"),
		"XDG_DATA_HOME="+filepath.Join(root, "xdg", "data"),
		"XDG_CACHE_HOME="+filepath.Join(root, "xdg", "cache"),
		"PATH="+path,
	)
	csArgs := []string{"--user-data-dir", userData, "--extensions-dir", filepath.Join(root, "extensions")}

	install := exec.Command(codeServer, append(csArgs, "--install-extension", vsix)...)
	install.Env = env
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("code-server --install-extension: %v\n%s", err, out)
	}

	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var csLog bytes.Buffer
	cs := exec.CommandContext(ctx, codeServer, append(csArgs,
		"--bind-addr", fmt.Sprintf("127.0.0.1:%d", port), "--auth", "none",
		"--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", "--disable-getting-started-override", ws)...)
	cs.Env = env
	cs.Stdout, cs.Stderr = &csLog, &csLog
	// Its own process group, so that stopping it also stops the extension host and diffill serve.
	cs.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cs.Cancel = func() error { return syscall.Kill(-cs.Process.Pid, syscall.SIGKILL) }
	if err := cs.Start(); err != nil {
		t.Fatalf("code-server: %v", err)
	}
	defer func() {
		syscall.Kill(-cs.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cs.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cs.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("code-server did not answer /healthz within 60 s:\n%s", csLog.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	shots := os.Getenv("DIFFILL_ARTIFACTS")
	if shots == "" {
		shots = filepath.Join(root, "screenshots")
	} else {
		shots = filepath.Join(shots, run.scenario)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	node := exec.CommandContext(ctx, "node", "e2e/e2e.js")
	node.Env = append(env,
		"NODE_PATH="+tools,
		"DIFFILL_E2E_SCENARIO="+run.scenario,
		"DIFFILL_E2E_URL="+base+"/?folder="+ws,
		"DIFFILL_E2E_FILE="+filepath.Join(ws, "a.go"),
		"DIFFILL_E2E_SHOTS="+shots,
		"DIFFILL_E2E_CHROMIUM="+chromium,
		"DIFFILL_E2E_USER_DATA="+userData,
		"DIFFILL_E2E_TINY_MODEL="+tiny,
		"DIFFILL_E2E_GOFMT="+gofmt(t),
	)
	var stdout, stderr bytes.Buffer
	node.Stdout, node.Stderr = &stdout, &stderr
	runErr := node.Run()
	var res e2eResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || runErr != nil || !res.OK {
		extLog := findLogs(filepath.Join(userData, "logs"), shots)
		t.Fatalf("VS Code end-to-end (%s): %v\nerror: %s\nsteps (stderr):\n%s\nscreenshots: %s\ncode-server log:\n%s\nextension logs:\n%s",
			run.scenario, runErr, res.Error, stderr.String(), shots, tail(csLog.String(), 3000), tail(extLog, 6000))
	}
	for _, s := range res.Steps {
		d, _ := json.Marshal(s.Detail)
		t.Logf("[%ss] %s %s", s.T, s.What, d)
	}
	t.Logf("screenshots: %s", shots)
}

// gofmt is the toolchain's gofmt, which the e2e script uses to check that
// edited Go still parses.
func gofmt(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin", "gofmt")
}

// findLogs concatenates the Diffill output channel and extension host logs
// under dir, and copies them into keep.
func findLogs(dir, keep string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		name := filepath.Base(p)
		if strings.Contains(name, "Diffill") || strings.Contains(name, "exthost") {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "== %s\n%s\n", p, data)
			os.WriteFile(filepath.Join(keep, name), data, 0o644)
		}
		return nil
	})
	return b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
