package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// ErrUnavailable is wrapped by every error that means "no usable GPU here"
// (no driver library, no device, too little memory, a PTX the driver cannot
// compile): callers fall back to the CPU engine when errors.Is reports it.
var ErrUnavailable = errors.New("cuda: no usable GPU")

// Error is a failed CUDA driver or cuBLAS call.
type Error struct {
	Call string // the API function, e.g. "cuMemAlloc_v2"
	Code int    // CUresult or cublasStatus_t
	Name string // e.g. "CUDA_ERROR_OUT_OF_MEMORY"; empty when unknown
}

func (e *Error) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("%s: %s (%d)", e.Call, e.Name, e.Code)
	}
	return fmt.Sprintf("%s: error %d", e.Call, e.Code)
}

// CUDA driver API constants used here (cuda.h).
const (
	cuDevAttrMultiprocessorCount = 16
	cuDevAttrComputeCapMajor     = 75
	cuDevAttrComputeCapMinor     = 76
	cuStreamNonBlocking          = 1
	cuStreamCaptureModeRelaxed   = 2
	cuJitErrorLogBuffer          = 5
	cuJitErrorLogBufferSize      = 6
	cudaErrorNoDevice            = 100
)

// driver holds the entry points of libcuda, resolved at run time so that the
// binary needs neither cgo nor CUDA headers to build.
type driver struct {
	lib uintptr

	cuInit, cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName uintptr
	cuDeviceTotalMem, cuDeviceGetAttribute, cuDevicePrimaryCtxRetain           uintptr
	cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuCtxSynchronize, cuMemGetInfo uintptr
	cuMemAlloc, cuMemFree, cuMemcpyHtoD, cuMemcpyDtoH, cuMemcpyDtoDAsync       uintptr
	cuMemsetD32Async, cuModuleLoadDataEx, cuModuleGetFunction, cuModuleUnload  uintptr
	cuLaunchKernel, cuStreamCreate, cuStreamDestroy, cuStreamSynchronize       uintptr
	cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiateWithFlags      uintptr
	cuGraphLaunch, cuGraphExecDestroy, cuGraphDestroy, cuEventCreate           uintptr
	cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuEventDestroy      uintptr
	cuGetErrorName, cuMemcpyHtoDAsync, cuMemcpyDtoHAsync, cuMemAllocHost       uintptr
	cuMemFreeHost                                                              uintptr
	optionalMissing                                                            []string
}

// driverSymbols maps each field to its exported name; *_v2 names are the
// 64-bit-size variants every driver since CUDA 4 exports.
func (d *driver) symbols() []struct {
	p    *uintptr
	name string
} {
	return []struct {
		p    *uintptr
		name string
	}{
		{&d.cuInit, "cuInit"},
		{&d.cuDriverGetVersion, "cuDriverGetVersion"},
		{&d.cuDeviceGetCount, "cuDeviceGetCount"},
		{&d.cuDeviceGet, "cuDeviceGet"},
		{&d.cuDeviceGetName, "cuDeviceGetName"},
		{&d.cuDeviceTotalMem, "cuDeviceTotalMem_v2"},
		{&d.cuDeviceGetAttribute, "cuDeviceGetAttribute"},
		{&d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{&d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
		{&d.cuCtxSetCurrent, "cuCtxSetCurrent"},
		{&d.cuCtxSynchronize, "cuCtxSynchronize"},
		{&d.cuMemGetInfo, "cuMemGetInfo_v2"},
		{&d.cuMemAlloc, "cuMemAlloc_v2"},
		{&d.cuMemFree, "cuMemFree_v2"},
		{&d.cuMemAllocHost, "cuMemAllocHost_v2"},
		{&d.cuMemFreeHost, "cuMemFreeHost"},
		{&d.cuMemcpyHtoD, "cuMemcpyHtoD_v2"},
		{&d.cuMemcpyDtoH, "cuMemcpyDtoH_v2"},
		{&d.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"},
		{&d.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
		{&d.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"},
		{&d.cuMemsetD32Async, "cuMemsetD32Async"},
		{&d.cuModuleLoadDataEx, "cuModuleLoadDataEx"},
		{&d.cuModuleGetFunction, "cuModuleGetFunction"},
		{&d.cuModuleUnload, "cuModuleUnload"},
		{&d.cuLaunchKernel, "cuLaunchKernel"},
		{&d.cuStreamCreate, "cuStreamCreate"},
		{&d.cuStreamDestroy, "cuStreamDestroy_v2"},
		{&d.cuStreamSynchronize, "cuStreamSynchronize"},
		{&d.cuStreamBeginCapture, "cuStreamBeginCapture_v2"},
		{&d.cuStreamEndCapture, "cuStreamEndCapture"},
		{&d.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"},
		{&d.cuGraphLaunch, "cuGraphLaunch"},
		{&d.cuGraphExecDestroy, "cuGraphExecDestroy"},
		{&d.cuGraphDestroy, "cuGraphDestroy"},
		{&d.cuEventCreate, "cuEventCreate"},
		{&d.cuEventRecord, "cuEventRecord"},
		{&d.cuEventSynchronize, "cuEventSynchronize"},
		{&d.cuEventElapsedTime, "cuEventElapsedTime"},
		{&d.cuEventDestroy, "cuEventDestroy_v2"},
		{&d.cuGetErrorName, "cuGetErrorName"},
	}
}

// graphSymbols may be missing from old drivers; without them the engine
// runs every launch eagerly.
var graphSymbols = map[string]bool{
	"cuStreamBeginCapture_v2":     true,
	"cuStreamEndCapture":          true,
	"cuGraphInstantiateWithFlags": true,
	"cuGraphLaunch":               true,
	"cuGraphExecDestroy":          true,
	"cuGraphDestroy":              true,
}

// driverLibrary is the file dlopen looks for: the soname every NVIDIA driver
// installs, overridable for tests and odd installs.
func driverLibrary() string {
	if p := os.Getenv("DIFFILL_LIBCUDA"); p != "" {
		return p
	}
	return "libcuda.so.1"
}

// driverDirs are where drivers live when the loader's path misses them
// (containers mount the host's driver under /usr/local/nvidia).
var driverDirs = []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/wsl/lib"}

// loadDriver opens the driver library and resolves its entry points. It does
// not initialise CUDA.
func loadDriver(path string) (*driver, error) {
	lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil && path == "libcuda.so.1" {
		for _, d := range driverDirs {
			if l, e := purego.Dlopen(filepath.Join(d, path), purego.RTLD_NOW|purego.RTLD_GLOBAL); e == nil {
				lib, err = l, nil
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: load %s: %v", ErrUnavailable, path, err)
	}
	d := &driver{lib: lib}
	for _, s := range d.symbols() {
		p, err := purego.Dlsym(lib, s.name)
		if err != nil || p == 0 {
			if graphSymbols[s.name] {
				d.optionalMissing = append(d.optionalMissing, s.name)
				continue
			}
			return nil, fmt.Errorf("%w: %s has no %s (driver too old?)", ErrUnavailable, path, s.name)
		}
		*s.p = p
	}
	return d, nil
}

func (d *driver) hasGraphs() bool { return len(d.optionalMissing) == 0 }

// call invokes a driver function and turns a non-zero CUresult into *Error.
func (d *driver) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if int32(r) == 0 {
		return nil
	}
	return &Error{Call: name, Code: int(int32(r)), Name: d.errorName(int32(r))}
}

func (d *driver) errorName(code int32) string {
	if d.cuGetErrorName == 0 {
		return ""
	}
	var s *byte
	r, _, _ := purego.SyscallN(d.cuGetErrorName, uintptr(code), uintptr(unsafe.Pointer(&s)))
	if r != 0 || s == nil {
		return ""
	}
	return cString(s)
}

// cString copies a NUL-terminated C string.
func cString(p *byte) string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	for i := 0; i < 4096; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		if c == 0 {
			break
		}
		b.WriteByte(c)
	}
	return b.String()
}
