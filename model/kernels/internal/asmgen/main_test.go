package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedUpToDate: the committed zgemm_amd64.s and zgemm_amd64.go are
// what the generator writes now (run `go generate` in model/kernels after
// changing it).
func TestGeneratedUpToDate(t *testing.T) {
	asm, decl, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"zgemm_amd64.s": asm, "zgemm_amd64.go": decl} {
		have, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, want) {
			t.Errorf("model/kernels/%s is not what internal/asmgen generates: run `go generate` in model/kernels", name)
		}
	}
}
