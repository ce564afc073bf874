// Package cuda runs diffill's transformer forward pass on an NVIDIA GPU
// without cgo: it loads the driver (libcuda.so.1) and cuBLAS at run time
// through purego, JIT-loads the project's own kernels from embedded PTX
// (kernels.cu, compiled by `go generate` with nvcc), multiplies bf16 weights
// with float32 accumulation through cublasGemmEx, keeps every layer's keys
// and values in a device cache, replays each repeated step shape from a
// CUDA graph, and reduces logits to the sampler's statistics (top-2,
// probabilities, entropy) on the device.
//
// Open reports ErrUnavailable (wrapped, with the reason) wherever a GPU
// cannot be used, so that callers fall back to the CPU engine with one log
// line. The default build needs no CUDA toolkit and no GPU.
package cuda
