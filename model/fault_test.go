package model

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWeightsTruncatedInPlace copies a smaller file over the weights of a
// loaded model, in place (as `cp new.safetensors model.safetensors` does):
// the mapped pages past the new end then fault. The forward pass must
// return ErrWeightsChanged, not kill the process with SIGBUS, and Changed
// must say so before the next request.
func TestWeightsTruncatedInPlace(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("weights are read, not mapped, here")
	}
	dir := copyDir(t, filepath.Join("testdata", "qwen2-tiny"))
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ids := m.Tokenizer.Encode("func main() {}")
	if _, err := m.Forward(context.Background(), &Batch{Tokens: ids}); err != nil {
		t.Fatal(err)
	}
	if err := m.Changed(); err != nil {
		t.Fatalf("Changed before any change: %v", err)
	}
	if err := os.Truncate(filepath.Join(dir, "model.safetensors"), 8); err != nil {
		t.Fatal(err)
	}
	_, err = m.Forward(context.Background(), &Batch{Tokens: ids})
	if !errors.Is(err, ErrWeightsChanged) {
		t.Fatalf("forward over truncated weights: got %v, want ErrWeightsChanged", err)
	}
	if !strings.Contains(err.Error(), "rename") {
		t.Errorf("the error should say how to replace weights safely: %v", err)
	}
	if err := m.Changed(); !errors.Is(err, ErrWeightsChanged) {
		t.Fatalf("Changed after truncation: %v", err)
	}
}

// TestWeightsReplacedSameSize: a file copied over with the same size does
// not fault, but its numbers are not the ones loaded; Changed catches it
// (and a rename, which keeps the old mapping intact, too).
func TestWeightsReplacedSameSize(t *testing.T) {
	dir := copyDir(t, filepath.Join("testdata", "qwen2-tiny"))
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	path := filepath.Join(dir, "model.safetensors")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Second)
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if err := m.Changed(); !errors.Is(err, ErrWeightsChanged) {
		t.Fatalf("Changed after a rename over the weights: %v", err)
	}
	// The old mapping is intact after a rename: the model still runs.
	if _, err := m.Forward(context.Background(), &Batch{Tokens: m.Tokenizer.Encode("x := 1")}); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointFilesNotRegular: links to devices, FIFOs and directories in
// place of a checkpoint's files are refused at once, with the reason, and
// oversized side files with the limit; nothing blocks or grows memory.
func TestCheckpointFilesNotRegular(t *testing.T) {
	for _, name := range []string{"config.json", "tokenizer.json", "generation_config.json", "tokenizer_config.json", "model.safetensors"} {
		for _, target := range []string{"/dev/zero", "/dev/urandom", "fifo", "dir", "huge"} {
			t.Run(name+"->"+target, func(t *testing.T) {
				dir := copyDir(t, filepath.Join("testdata", "qwen2-tiny"))
				p := filepath.Join(dir, name)
				os.Remove(p)
				want := "not a regular file"
				switch target {
				case "fifo":
					if err := syscall.Mkfifo(p, 0o644); err != nil {
						t.Skip("no FIFOs here:", err)
					}
				case "dir":
					if err := os.Mkdir(p, 0o755); err != nil {
						t.Fatal(err)
					}
				case "huge":
					if name == "model.safetensors" {
						t.Skip("weights are mapped, not read: no size limit")
					}
					// Sparse: 100 MB of size, no disk.
					f, err := os.Create(p)
					if err != nil {
						t.Fatal(err)
					}
					f.Truncate(100 << 20)
					f.Close()
					want = "limit"
				default:
					if _, err := os.Stat(target); err != nil {
						t.Skip(err)
					}
					if err := os.Symlink(target, p); err != nil {
						t.Fatal(err)
					}
				}
				done := make(chan error, 1)
				go func() {
					m, err := Load(dir)
					if err == nil {
						m.Close()
					}
					done <- err
				}()
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), name) {
						t.Fatalf("Load: got %v, want an error naming %s and saying %q", err, name, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("Load blocked")
				}
			})
		}
	}
}

// TestTokenizerSharedID: two tokens with one id in tokenizer.json are
// refused at load, naming both, instead of panicking later in the engine.
func TestTokenizerSharedID(t *testing.T) {
	dir := copyDir(t, filepath.Join("testdata", "qwen2-tiny"))
	p := filepath.Join(dir, "tokenizer.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// "<|pad|>" is id 2 in the tiny tokenizer; give another token that id.
	s := strings.Replace(string(b), `"nam": 319`, `"nam": 2`, 1)
	if s == string(b) {
		t.Fatal("test data changed: no \"nam\": 319 in tokenizer.json")
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "share id 2") {
		t.Fatalf("Load: %v, want an error saying two tokens share id 2", err)
	}
}
