// Package builtin embeds diffill's built-in model, so that diffill works the
// moment it is installed, offline, with no download.
//
// The model is a small bidirectional code diffusion language model trained
// from scratch on the Go distribution's source (model/train), stored in the
// Hugging Face Qwen2 layout, so the one code path in package model serves it
// and published checkpoints alike. weights/README.md is its model card: the
// corpus and its license, the training command, commit and compute, and the
// evaluation.
package builtin

import (
	_ "embed" // the weights
	"fmt"

	"github.com/diffill/diffill/model"
)

// The files are embedded one by one into []byte variables: the linker places
// them in the binary's data as they are, so loading copies nothing and the
// weights can alias them (model.LoadFiles).
var (
	//go:embed weights/config.json
	configJSON []byte
	//go:embed weights/model.safetensors
	safetensors []byte
	//go:embed weights/tokenizer.json
	tokenizerJSON []byte
)

// Files returns the built-in checkpoint's files by name: config.json,
// model.safetensors and tokenizer.json. The byte slices are shared with the
// binary and every caller: they must not be modified.
func Files() map[string][]byte {
	return map[string][]byte{
		"config.json":       configJSON,
		"model.safetensors": safetensors,
		"tokenizer.json":    tokenizerJSON,
	}
}

// Load returns the built-in model, with its tokenizer.
func Load() (*model.Model, error) {
	m, err := model.LoadFiles(Files())
	if err != nil {
		return nil, fmt.Errorf("load built-in model: %w", err)
	}
	return m, nil
}
