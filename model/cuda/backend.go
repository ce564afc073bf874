package cuda

import (
	"fmt"
	"math"
)

// devptr is a device address (CUdeviceptr).
type devptr uintptr

// dim3 is a grid or block shape.
type dim3 struct{ x, y, z int }

func d1(x int) dim3    { return dim3{x, 1, 1} }
func d2(x, y int) dim3 { return dim3{x, y, 1} }

// karg is one kernel argument: its PTX kind and its bits (a pointer, a
// two's-complement int32, or float32 bits), laid out as cuLaunchKernel reads
// them from an 8-byte slot (little-endian: a 4-byte parameter is the low half).
type karg struct {
	kind argKind
	bits uint64
}

func pArg(p devptr) karg  { return karg{argPtr, uint64(p)} }
func iArg(v int) karg     { return karg{argI32, uint64(uint32(int32(v)))} }
func fArg(v float32) karg { return karg{argF32, uint64(math.Float32bits(v))} }

// lArg is a 64-bit integer parameter (a C long), which PTX declares .u64
// like a pointer.
func lArg(v int) karg { return karg{argPtr, uint64(int64(v))} }

// checkArgs verifies a launch against the kernel's PTX signature. (Sizes
// passed as int parameters are bounded by Config.validate, so they fit.)
func checkArgs(name string, sig []argKind, args []karg) error {
	if len(sig) != len(args) {
		return fmt.Errorf("kernel %s: %d arguments, PTX declares %d", name, len(args), len(sig))
	}
	for i, a := range args {
		if a.kind != sig[i] {
			return fmt.Errorf("kernel %s: argument %d is %c, PTX declares %c", name, i, a.kind, sig[i])
		}
	}
	return nil
}

// gemmArgs is one cublasGemmEx call, column-major as cuBLAS sees it:
// C[m×n] = alpha·op(A)·op(B) + beta·C, A and B bf16, C float32.
type gemmArgs struct {
	transA, transB bool
	m, n, k        int
	a              devptr
	lda            int
	b              devptr
	ldb            int
	alpha, beta    float32
	c              devptr
	ldc            int
}

// backend is what the engine needs from a device: memory, copies, kernel
// launches, matrix products and graph capture. The CUDA device implements it;
// the tests also run the engine on an emulator that executes the kernels'
// Go references, which checks all the wiring without a GPU.
type backend interface {
	alloc(bytes int) (devptr, error)
	free(p devptr) error
	upload(dst devptr, src []byte) error   // host to device, ordered with the stream
	download(dst []byte, src devptr) error // device to host, waits for the stream
	copyD(dst, src devptr, bytes int) error
	fill32(dst devptr, v uint32, n int) error
	launch(name string, grid, block dim3, smem int, args []karg) error
	gemm(g gemmArgs) error
	sync() error
	memInfo() (free, total uint64, err error)
	// bind makes the device current on this goroutine's OS thread until
	// release is called; every engine entry point holds it.
	bind() (release func(), err error)
	// beginCapture starts recording launches (no copies to or from the host
	// may happen until endCapture); the graph replays them with the
	// arguments they had.
	beginCapture() error
	endCapture() (graph, error)
}

// graph is a captured sequence of launches.
type graph interface {
	launch() error
	destroy()
}
