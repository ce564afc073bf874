package cuda

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"
)

const (
	maxKernelArgs   = 16
	cublasWorkspace = 32 << 20
)

// Device is one CUDA GPU with diffill's kernels loaded: the driver through
// libcuda.so.1, matrix products through cuBLAS when it loads (else through
// the project's own fallback kernel), all work on one stream.
type Device struct {
	Name         string
	Major, Minor int // compute capability
	SMs          int
	TotalMem     uint64
	Driver       int    // driver API version, e.g. 13000
	BLAS         string // the cuBLAS file in use, or "" for the fallback kernel
	Notes        []string

	drv        *driver
	blas       *cublas
	blasHandle uintptr
	dev        int32
	ctx        uintptr
	stream     uintptr
	module     uintptr
	fns        map[string]uintptr
	sigs       map[string][]argKind
	workspace  devptr

	binding   // bind's lock and owning thread (thread.go)
	slots     *[maxKernelArgs]uint64
	ptrs      *[maxKernelArgs]uintptr
	pin       runtime.Pinner
	capturing bool
	syncEach  bool      // DIFFILL_CUDA_SYNC=1: wait after every launch, so an asynchronous fault names its kernel
	prof      *profiler // per-launch event timing (profile.go); nil: off
}

func (d *Device) String() string {
	return fmt.Sprintf("%s (sm_%d%d, %d SMs, %.1f GiB)", d.Name, d.Major, d.Minor, d.SMs, float64(d.TotalMem)/(1<<30))
}

// Open finds the first CUDA device (DIFFILL_CUDA_DEVICE picks another) and
// loads the kernels. Any reason the GPU cannot be used returns an error
// wrapping ErrUnavailable.
func Open() (*Device, error) {
	drv, err := loadDriver(driverLibrary())
	if err != nil {
		return nil, err
	}
	d := &Device{drv: drv}
	// The context does not exist yet: open makes it current on this thread
	// (locked by the binding) before the first allocation.
	release, _ := d.binding.lock(nil)
	err = d.open()
	release()
	if err != nil {
		d.Close()
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return d, nil
}

func (d *Device) open() error {
	drv := d.drv
	if err := drv.call("cuInit", drv.cuInit, 0); err != nil {
		return err
	}
	var ver, count int32
	if err := drv.call("cuDriverGetVersion", drv.cuDriverGetVersion, uintptr(unsafe.Pointer(&ver))); err != nil {
		return err
	}
	d.Driver = int(ver)
	if err := drv.call("cuDeviceGetCount", drv.cuDeviceGetCount, uintptr(unsafe.Pointer(&count))); err != nil {
		return err
	}
	ordinal := 0
	if s := os.Getenv("DIFFILL_CUDA_DEVICE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("DIFFILL_CUDA_DEVICE=%q: %v", s, err)
		}
		ordinal = n
	}
	if ordinal < 0 || ordinal >= int(count) {
		return fmt.Errorf("%w: %d CUDA devices, wanted device %d", ErrUnavailable, count, ordinal)
	}
	if err := drv.call("cuDeviceGet", drv.cuDeviceGet, uintptr(unsafe.Pointer(&d.dev)), uintptr(ordinal)); err != nil {
		return err
	}
	name := make([]byte, 256)
	if err := drv.call("cuDeviceGetName", drv.cuDeviceGetName, uintptr(unsafe.Pointer(&name[0])), 255, uintptr(d.dev)); err != nil {
		return err
	}
	d.Name = cString(&name[0])
	var mem uint64
	if err := drv.call("cuDeviceTotalMem_v2", drv.cuDeviceTotalMem, uintptr(unsafe.Pointer(&mem)), uintptr(d.dev)); err != nil {
		return err
	}
	d.TotalMem = mem
	for _, a := range []struct {
		dst  *int
		attr int
	}{{&d.Major, cuDevAttrComputeCapMajor}, {&d.Minor, cuDevAttrComputeCapMinor}, {&d.SMs, cuDevAttrMultiprocessorCount}} {
		var v int32
		if err := drv.call("cuDeviceGetAttribute", drv.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&v)), uintptr(a.attr), uintptr(d.dev)); err != nil {
			return err
		}
		*a.dst = int(v)
	}
	if d.Major < 8 {
		return fmt.Errorf("%w: %s has compute capability %d.%d; diffill's kernels need 8.0 or newer", ErrUnavailable, d.Name, d.Major, d.Minor)
	}
	// The primary context is the one the CUDA runtime inside cuBLAS uses,
	// so both libraries share allocations and the stream.
	if err := drv.call("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain, uintptr(unsafe.Pointer(&d.ctx)), uintptr(d.dev)); err != nil {
		return err
	}
	if err := drv.call("cuCtxSetCurrent", drv.cuCtxSetCurrent, d.ctx); err != nil {
		return err
	}
	if err := drv.call("cuStreamCreate", drv.cuStreamCreate, uintptr(unsafe.Pointer(&d.stream)), cuStreamNonBlocking); err != nil {
		return err
	}
	if err := d.loadModule(); err != nil {
		return err
	}
	d.syncEach = os.Getenv("DIFFILL_CUDA_SYNC") == "1"
	d.slots = new([maxKernelArgs]uint64)
	d.ptrs = new([maxKernelArgs]uintptr)
	d.pin.Pin(d.slots)
	for i := range d.ptrs {
		d.ptrs[i] = uintptr(unsafe.Pointer(&d.slots[i]))
	}
	d.pin.Pin(d.ptrs)
	if !drv.hasGraphs() {
		d.Notes = append(d.Notes, fmt.Sprintf("driver lacks %v: no CUDA graphs", drv.optionalMissing))
	}
	if err := d.openBLAS(); err != nil {
		d.Notes = append(d.Notes, fmt.Sprintf("%v; using diffill's own (slower) matrix kernel", err))
	}
	return nil
}

// loadModule JIT-compiles the embedded PTX (or DIFFILL_CUDA_MODULE, a PTX or
// cubin file, for trying a build made on the GPU machine).
func (d *Device) loadModule() error {
	image := []byte(kernelsPTX)
	src := "embedded kernels.ptx"
	if p := os.Getenv("DIFFILL_CUDA_MODULE"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		image, src = b, p
	}
	sigs, err := parseSignatures(kernelsPTX)
	if err != nil {
		return fmt.Errorf("embedded PTX: %v", err)
	}
	d.sigs = sigs
	image = append(image[:len(image):len(image)], 0) // PTX must be NUL-terminated
	logBuf := make([]byte, 8192)
	var pin runtime.Pinner // the driver writes the log through a pointer held in vals
	pin.Pin(&logBuf[0])
	defer pin.Unpin()
	opts := []int32{cuJitErrorLogBuffer, cuJitErrorLogBufferSize}
	vals := []uintptr{uintptr(unsafe.Pointer(&logBuf[0])), uintptr(len(logBuf))}
	err = d.drv.call("cuModuleLoadDataEx", d.drv.cuModuleLoadDataEx, uintptr(unsafe.Pointer(&d.module)),
		uintptr(unsafe.Pointer(&image[0])), uintptr(len(opts)), uintptr(unsafe.Pointer(&opts[0])), uintptr(unsafe.Pointer(&vals[0])))
	runtime.KeepAlive(logBuf)
	runtime.KeepAlive(image)
	if err != nil {
		return fmt.Errorf("%w: load %s: %v: %s", ErrUnavailable, src, err, cString(&logBuf[0]))
	}
	d.fns = map[string]uintptr{}
	for name := range sigs {
		nb := append([]byte(name), 0)
		var fn uintptr
		if err := d.drv.call("cuModuleGetFunction("+name+")", d.drv.cuModuleGetFunction, uintptr(unsafe.Pointer(&fn)), d.module, uintptr(unsafe.Pointer(&nb[0]))); err != nil {
			return err
		}
		d.fns[name] = fn
	}
	return nil
}

func (d *Device) openBLAS() error {
	b, err := loadCublas()
	if err != nil {
		return err
	}
	var h uintptr
	if err := b.call("cublasCreate_v2", b.create, uintptr(unsafe.Pointer(&h))); err != nil {
		return err
	}
	if err := b.call("cublasSetStream_v2", b.setStream, h, d.stream); err != nil {
		b.call("cublasDestroy_v2", b.destroy, h)
		return err
	}
	if b.setWorkspace != 0 {
		ws, err := d.alloc(cublasWorkspace)
		if err != nil {
			b.call("cublasDestroy_v2", b.destroy, h)
			return err
		}
		if err := b.call("cublasSetWorkspace_v2", b.setWorkspace, h, uintptr(ws), cublasWorkspace); err != nil {
			d.free(ws)
			b.call("cublasDestroy_v2", b.destroy, h)
			return err
		}
		d.workspace = ws
	}
	d.blas, d.blasHandle, d.BLAS = b, h, b.path
	return nil
}

// Close releases the device's resources. Engines built on it must be closed first.
func (d *Device) Close() error {
	if d == nil || d.drv == nil {
		return nil
	}
	var errs []error
	release, _ := d.binding.lock(func() error {
		if d.ctx != 0 {
			errs = append(errs, d.drv.call("cuCtxSetCurrent", d.drv.cuCtxSetCurrent, d.ctx))
		}
		return nil
	})
	defer release()
	d.profStop()
	if d.blasHandle != 0 {
		errs = append(errs, d.blas.call("cublasDestroy_v2", d.blas.destroy, d.blasHandle))
		d.blasHandle = 0
	}
	if d.workspace != 0 {
		errs = append(errs, d.free(d.workspace))
		d.workspace = 0
	}
	if d.module != 0 {
		errs = append(errs, d.drv.call("cuModuleUnload", d.drv.cuModuleUnload, d.module))
		d.module = 0
	}
	if d.stream != 0 {
		errs = append(errs, d.drv.call("cuStreamDestroy_v2", d.drv.cuStreamDestroy, d.stream))
		d.stream = 0
	}
	if d.ctx != 0 {
		errs = append(errs, d.drv.call("cuDevicePrimaryCtxRelease_v2", d.drv.cuDevicePrimaryCtxRelease, uintptr(d.dev)))
		d.ctx = 0
	}
	d.pin.Unpin()
	return errors.Join(errs...)
}

// bind makes the device's context current on the calling goroutine's OS
// thread and keeps the goroutine there, alone on the device, until release.
// Every driver operation below checks that it runs under it.
func (d *Device) bind() (release func(), err error) {
	return d.binding.lock(func() error {
		return d.drv.call("cuCtxSetCurrent", d.drv.cuCtxSetCurrent, d.ctx)
	})
}

func (d *Device) alloc(bytes int) (devptr, error) {
	if bytes <= 0 {
		bytes = 4
	}
	if err := d.held("cuMemAlloc_v2"); err != nil {
		return 0, err
	}
	var p devptr
	if err := d.drv.call("cuMemAlloc_v2", d.drv.cuMemAlloc, uintptr(unsafe.Pointer(&p)), uintptr(bytes)); err != nil {
		return 0, fmt.Errorf("allocating %d bytes: %w", bytes, err)
	}
	return p, nil
}

func (d *Device) free(p devptr) error {
	if p == 0 {
		return nil
	}
	if err := d.held("cuMemFree_v2"); err != nil {
		return err
	}
	return d.drv.call("cuMemFree_v2", d.drv.cuMemFree, uintptr(p))
}

func (d *Device) upload(dst devptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	if d.capturing {
		return errors.New("cuda: host copy during graph capture")
	}
	if err := d.held("cuMemcpyHtoDAsync_v2"); err != nil {
		return err
	}
	err := d.drv.call("cuMemcpyHtoDAsync_v2", d.drv.cuMemcpyHtoDAsync, uintptr(dst), uintptr(unsafe.Pointer(&src[0])), uintptr(len(src)), d.stream)
	runtime.KeepAlive(src)
	return err
}

func (d *Device) download(dst []byte, src devptr) error {
	if len(dst) == 0 {
		return nil
	}
	if d.capturing {
		return errors.New("cuda: host copy during graph capture")
	}
	if err := d.held("cuMemcpyDtoHAsync_v2"); err != nil {
		return err
	}
	err := d.drv.call("cuMemcpyDtoHAsync_v2", d.drv.cuMemcpyDtoHAsync, uintptr(unsafe.Pointer(&dst[0])), uintptr(src), uintptr(len(dst)), d.stream)
	if err == nil {
		err = d.sync()
	}
	runtime.KeepAlive(dst)
	return err
}

func (d *Device) copyD(dst, src devptr, bytes int) error {
	if bytes == 0 {
		return nil
	}
	if err := d.held("cuMemcpyDtoDAsync_v2"); err != nil {
		return err
	}
	return d.drv.call("cuMemcpyDtoDAsync_v2", d.drv.cuMemcpyDtoDAsync, uintptr(dst), uintptr(src), uintptr(bytes), d.stream)
}

func (d *Device) fill32(dst devptr, v uint32, n int) error {
	if n == 0 {
		return nil
	}
	if err := d.held("cuMemsetD32Async"); err != nil {
		return err
	}
	return d.drv.call("cuMemsetD32Async", d.drv.cuMemsetD32Async, uintptr(dst), uintptr(v), uintptr(n), d.stream)
}

func (d *Device) sync() error {
	if err := d.held("cuStreamSynchronize"); err != nil {
		return err
	}
	return d.drv.call("cuStreamSynchronize", d.drv.cuStreamSynchronize, d.stream)
}

func (d *Device) memInfo() (free, total uint64, err error) {
	if err := d.held("cuMemGetInfo_v2"); err != nil {
		return 0, 0, err
	}
	err = d.drv.call("cuMemGetInfo_v2", d.drv.cuMemGetInfo, uintptr(unsafe.Pointer(&free)), uintptr(unsafe.Pointer(&total)))
	return free, total, err
}

func (d *Device) launch(name string, grid, block dim3, smem int, args []karg) error {
	fn, ok := d.fns[name]
	if !ok {
		return fmt.Errorf("cuda: no kernel %q in the module", name)
	}
	if err := checkArgs(name, d.sigs[name], args); err != nil {
		return err
	}
	if len(args) > maxKernelArgs {
		return fmt.Errorf("kernel %s: %d arguments, at most %d", name, len(args), maxKernelArgs)
	}
	if grid.x <= 0 || grid.y <= 0 || grid.z <= 0 {
		return nil // nothing to do (e.g. zero rows)
	}
	// The kernel's name goes into messages only on failure: this runs for
	// every launch, and building "cuLaunchKernel(name)" each time allocated.
	if err := d.held("cuLaunchKernel"); err != nil {
		return fmt.Errorf("kernel %s: %w", name, err)
	}
	for i, a := range args {
		d.slots[i] = a.bits
	}
	start, err := d.profBegin()
	if err != nil {
		return err
	}
	err = d.drv.call("cuLaunchKernel", d.drv.cuLaunchKernel, fn,
		uintptr(grid.x), uintptr(grid.y), uintptr(grid.z), uintptr(block.x), uintptr(block.y), uintptr(block.z),
		uintptr(smem), d.stream, uintptr(unsafe.Pointer(&d.ptrs[0])), 0)
	if e, ok := err.(*Error); ok {
		e.Call = "cuLaunchKernel(" + name + ")"
	}
	if err == nil {
		err = d.profEnd(name, start)
	}
	return d.checkAfter(name, err)
}

// checkAfter, with DIFFILL_CUDA_SYNC=1 and outside a capture, waits for the
// work just queued so that a fault is reported with its kernel's name.
func (d *Device) checkAfter(name string, err error) error {
	if err != nil || !d.syncEach || d.capturing {
		return err
	}
	if err := d.sync(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (d *Device) gemm(g gemmArgs) error {
	if d.blas == nil {
		return d.gemmFallback(g)
	}
	if err := d.held("cublasGemmEx"); err != nil {
		return err
	}
	op := func(t bool) uintptr {
		if t {
			return cublasOpT
		}
		return cublasOpN
	}
	alpha, beta := g.alpha, g.beta
	gemmDefault := int32(cublasGemmDflt)
	start, err := d.profBegin()
	if err != nil {
		return err
	}
	err = d.blas.call("cublasGemmEx", d.blas.gemmEx, d.blasHandle, op(g.transA), op(g.transB),
		uintptr(g.m), uintptr(g.n), uintptr(g.k), uintptr(unsafe.Pointer(&alpha)),
		uintptr(g.a), cudaR16BF, uintptr(g.lda), uintptr(g.b), cudaR16BF, uintptr(g.ldb),
		uintptr(unsafe.Pointer(&beta)), uintptr(g.c), cudaR32F, uintptr(g.ldc),
		cublasCompute32, uintptr(uint32(gemmDefault)))
	if err == nil && start != 0 {
		err = d.profEnd(fmt.Sprintf("cublasGemmEx %dx%dx%d beta %g", g.m, g.n, g.k, beta), start)
	}
	return d.checkAfter(fmt.Sprintf("cublasGemmEx(%dx%dx%d)", g.m, g.n, g.k), err)
}

// gemmFallback runs the one product shape the engine issues (see
// Engine.linear) on the project's own kernel.
func (d *Device) gemmFallback(g gemmArgs) error {
	grid, block, args, err := fallbackLaunch(g)
	if err != nil {
		return err
	}
	return d.launch("gemm_bf16", grid, block, 0, args)
}

// fallbackLaunch maps a cuBLAS-form product yᵀ = W·xᵀ (A = W transposed,
// B = xᵀ) onto gemm_bf16(y, x, W, rows of x, rows of W, k, beta).
func fallbackLaunch(g gemmArgs) (grid, block dim3, args []karg, err error) {
	if !g.transA || g.transB || g.lda != g.k || g.ldb != g.k || g.ldc != g.m {
		return grid, block, nil, fmt.Errorf("cuda: fallback matrix kernel: unsupported product %+v", g)
	}
	return d2(ceilDiv(g.m, 64), ceilDiv(g.n, 64)), d2(16, 16),
		[]karg{pArg(g.c), pArg(g.b), pArg(g.a), iArg(g.n), iArg(g.m), iArg(g.k), fArg(g.alpha), fArg(g.beta)}, nil
}

func (d *Device) beginCapture() error {
	if !d.drv.hasGraphs() {
		return errors.New("cuda: driver has no graph API")
	}
	if err := d.held("cuStreamBeginCapture_v2"); err != nil {
		return err
	}
	if err := d.drv.call("cuStreamBeginCapture_v2", d.drv.cuStreamBeginCapture, d.stream, cuStreamCaptureModeRelaxed); err != nil {
		return err
	}
	d.capturing = true
	return nil
}

type cudaGraph struct {
	d       *Device
	g, exec uintptr
}

func (d *Device) endCapture() (graph, error) {
	d.capturing = false
	if err := d.held("cuStreamEndCapture"); err != nil {
		return nil, err
	}
	var g uintptr
	if err := d.drv.call("cuStreamEndCapture", d.drv.cuStreamEndCapture, d.stream, uintptr(unsafe.Pointer(&g))); err != nil {
		return nil, err
	}
	var exec uintptr
	if err := d.drv.call("cuGraphInstantiateWithFlags", d.drv.cuGraphInstantiateWithFlags, uintptr(unsafe.Pointer(&exec)), g, 0); err != nil {
		d.drv.call("cuGraphDestroy", d.drv.cuGraphDestroy, g)
		return nil, err
	}
	return &cudaGraph{d: d, g: g, exec: exec}, nil
}

func (c *cudaGraph) launch() error {
	if err := c.d.held("cuGraphLaunch"); err != nil {
		return err
	}
	return c.d.drv.call("cuGraphLaunch", c.d.drv.cuGraphLaunch, c.exec, c.d.stream)
}

func (c *cudaGraph) destroy() {
	c.d.drv.call("cuGraphExecDestroy", c.d.drv.cuGraphExecDestroy, c.exec)
	c.d.drv.call("cuGraphDestroy", c.d.drv.cuGraphDestroy, c.g)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
