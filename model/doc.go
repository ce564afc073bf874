// Package model loads diffusion language model checkpoints in the Hugging
// Face layout and runs their bidirectional transformer on the CPU.
//
// Two families are read, chosen by config.json: the Qwen2 layout (Dream,
// Dream-Coder, DreamOn, DiffuCoder, Open-dCoder and diffill's built-in model;
// qwen2.go) and the LLaDA layout (OLMo tensor names and config keys;
// llada.go). Both map their weights into one layer type, and one forward pass
// serves both: embedding, RMSNorm, RoPE (rotate_half convention), grouped-query
// attention with no causal mask, SwiGLU MLP, final norm, head.
//
// Weights come from model.safetensors or a sharded
// model.safetensors.index.json, in F32, BF16 or F16, memory-mapped and
// validated (safetensors.go): a truncated, hostile or mismatched file is an
// error naming the file and the tensor. Compute is float32 on raw slices with
// the kernels of package model/kernels; gorgonia.org/tensor's Dense appears
// only at the API boundary, as the logits Forward returns.
//
// A Batch can recompute a subset of its positions and take the keys and
// values of the others from a Cache (Fast-dLLM's dual cache), which is how a
// denoising step avoids running the whole canvas. Cache.Shift keeps a cache
// valid across insertions and deletions by re-rotating the stored keys.
//
// model/reference holds an independent PyTorch implementation; the tests
// hold this package to its golden logits (testdata/*/golden.*).
package model
