package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ebitengine/purego"
)

// cuBLAS constants (cublas_api.h, library_types.h).
const (
	cublasOpN       = 0
	cublasOpT       = 1
	cudaR32F        = 0
	cudaR16BF       = 14
	cublasCompute32 = 68 // CUBLAS_COMPUTE_32F
	cublasGemmDflt  = -1 // CUBLAS_GEMM_DEFAULT
)

var cublasStatusNames = map[int]string{
	1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED", 7: "CUBLAS_STATUS_INVALID_VALUE",
	8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR",
}

// cublas holds the few cuBLAS entry points diffill uses.
type cublas struct {
	path                                     string
	create, destroy, setStream, setWorkspace uintptr
	gemmEx                                   uintptr
}

// cublasCandidates lists where to look: an explicit DIFFILL_CUBLAS file, the
// sonames of CUDA 13, 12 and 11 (found through the loader's usual search),
// then the toolkit's usual directories.
func cublasCandidates() []string {
	var c []string
	if p := os.Getenv("DIFFILL_CUBLAS"); p != "" {
		c = append(c, p)
	}
	names := []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11"}
	c = append(c, names...)
	var dirs []string
	for _, env := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if v := os.Getenv(env); v != "" {
			dirs = append(dirs, filepath.Join(v, "lib64"), filepath.Join(v, "lib"))
		}
	}
	dirs = append(dirs, "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
		"/usr/local/cuda/targets/sbsa-linux/lib")
	for _, d := range dirs {
		for _, n := range names {
			c = append(c, filepath.Join(d, n))
		}
	}
	return c
}

// loadCublas opens the first cuBLAS that resolves every entry point. Before
// opening libcublas by path it opens the libcublasLt beside it, so that the
// dependency resolves even where the directory is not on the loader's path.
func loadCublas() (*cublas, error) {
	var tried []string
	for _, path := range cublasCandidates() {
		if strings.Contains(path, "/") {
			if _, err := os.Stat(path); err != nil {
				continue
			}
			lt := strings.Replace(path, "libcublas.so", "libcublasLt.so", 1)
			if _, err := os.Stat(lt); err == nil {
				purego.Dlopen(lt, purego.RTLD_NOW|purego.RTLD_GLOBAL) // best effort; libcublas reports what is missing
			}
		}
		lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		b := &cublas{path: path}
		ok := true
		for _, s := range []struct {
			p    *uintptr
			name string
		}{
			{&b.create, "cublasCreate_v2"},
			{&b.destroy, "cublasDestroy_v2"},
			{&b.setStream, "cublasSetStream_v2"},
			{&b.gemmEx, "cublasGemmEx"},
		} {
			p, err := purego.Dlsym(lib, s.name)
			if err != nil || p == 0 {
				tried = append(tried, fmt.Sprintf("%s: no %s", path, s.name))
				ok = false
				break
			}
			*s.p = p
		}
		if !ok {
			continue
		}
		// cublasSetWorkspace_v2 (cuBLAS >= 11.?) lets graph capture run
		// without allocations; without it capture may fail and the engine
		// then runs eagerly.
		if p, err := purego.Dlsym(lib, "cublasSetWorkspace_v2"); err == nil {
			b.setWorkspace = p
		}
		return b, nil
	}
	if len(tried) == 0 {
		tried = append(tried, "no libcublas.so.{13,12,11} found")
	}
	return nil, fmt.Errorf("cuBLAS not loaded (%s)", strings.Join(tried, "; "))
}

func (b *cublas) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if int32(r) == 0 {
		return nil
	}
	return &Error{Call: name, Code: int(int32(r)), Name: cublasStatusNames[int(int32(r))]}
}
