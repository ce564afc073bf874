package cuda

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenFallsBack: where there is no usable GPU (no libcuda, or a driver
// without a device, as on CI machines), Open must fail with ErrUnavailable
// and a message naming the reason, never panic.
func TestOpenFallsBack(t *testing.T) {
	t.Setenv("DIFFILL_LIBCUDA", filepath.Join(t.TempDir(), "libcuda.so.1"))
	_, err := Open()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "libcuda.so.1") {
		t.Fatalf("missing driver: err = %v", err)
	}
	t.Setenv("DIFFILL_LIBCUDA", "")
	d, err := Open()
	if err == nil {
		d.Close()
		t.Skipf("a GPU is present (%s): the no-GPU path is not reachable here", d)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no GPU: err = %v, want ErrUnavailable", err)
	}
	t.Logf("no GPU here: %v", err)
}

// TestDriverSymbols resolves every driver entry point from the libcuda the
// machine has (Debian's nvidia-cuda-toolkit installs one even without a
// GPU), and checks that a failing call is reported with its name.
func TestDriverSymbols(t *testing.T) {
	drv, err := loadDriver(driverLibrary())
	if err != nil {
		t.Skipf("no driver library: %v", err)
	}
	if !drv.hasGraphs() {
		t.Logf("driver lacks %v", drv.optionalMissing)
	}
	err = drv.call("cuDeviceGetCount", drv.cuDeviceGetCount, 0) // NULL count: not initialised or invalid value
	var ce *Error
	if !errors.As(err, &ce) || ce.Call != "cuDeviceGetCount" || ce.Name == "" {
		t.Fatalf("err = %v, want a named *Error", err)
	}
	t.Logf("expected failure reads: %v", err)
}

func TestCublasSymbols(t *testing.T) {
	b, err := loadCublas()
	if err != nil {
		t.Skipf("no cuBLAS here: %v", err)
	}
	if b.gemmEx == 0 || b.create == 0 || b.setStream == 0 {
		t.Fatalf("unresolved entry point: %+v", b)
	}
	t.Logf("cuBLAS: %s (workspace API: %v)", b.path, b.setWorkspace != 0)
}

// TestPTXSignatures: the embedded PTX targets compute_80 and declares every
// kernel the engine launches with the parameter kinds the Go side packs (the
// emulated engine tests check each launch against these).
func TestPTXSignatures(t *testing.T) {
	if !strings.Contains(kernelsPTX, ".target sm_80") {
		t.Fatal("kernels.ptx is not built for compute_80")
	}
	sigs, err := parseSignatures(kernelsPTX)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"embed_gather":      "pppiif",
		"rmsnorm_f32":       "pppiif",
		"add_bias":          "ppii",
		"qkv_rope":          "ppipppppiiii",
		"rope_rotate":       "ppiiiiii",
		"attention":         "ppppiiiiiif",
		"attention_part":    "ppppiiiiiifi",
		"attention_combine": "ppppiiii",
		"swiglu":            "ppppii",
		"add_into":          "ppp",
		"ban_tokens":        "pppii",
		"gather_rows":       "pppii",
		"gemm_bf16":         "pppiiiff",
		"add_rmsnorm":       "pppppppiif",
		"attention_gqa":     "ppppppiiiiiifi",
		"attention_gqa128":  "ppppppiiiiiifi",
		"row_stats_part":    "pppiifi",
		"row_stats_merge":   "ppppppppppiifi",
	}
	for name, w := range want {
		got := ""
		for _, k := range sigs[name] {
			got += string(k)
		}
		if got != w {
			t.Errorf("kernel %s: PTX parameters %q, want %q", name, got, w)
		}
	}
	if len(sigs) != len(want) {
		t.Errorf("PTX has %d kernels, test knows %d", len(sigs), len(want))
	}
	if _, err := parseSignatures("no kernels"); err == nil {
		t.Error("PTX without entries accepted")
	}
}

// TestPTXUpToDate rebuilds kernels.ptx from kernels.cu with nvcc and
// compares, then assembles it for sm_80 and sm_90 with ptxas to catch what
// only the back end reports. Needs nvcc (Debian: nvidia-cuda-toolkit).
// CI does not install the 1.6 GB toolkit, so a missing nvcc skips even
// under DIFFILL_E2E=1; DIFFILL_CUDA_TOOLKIT=1 makes it a failure.
func TestPTXUpToDate(t *testing.T) {
	nvcc, err := exec.LookPath("nvcc")
	if err != nil {
		if os.Getenv("DIFFILL_CUDA_TOOLKIT") == "1" {
			t.Fatal("DIFFILL_CUDA_TOOLKIT=1 but nvcc not found (install nvidia-cuda-toolkit)")
		}
		t.Skip("nvcc not found: kernels.ptx not checked against kernels.cu (install nvidia-cuda-toolkit; DIFFILL_CUDA_TOOLKIT=1 makes this a failure)")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "kernels.ptx")
	if b, err := exec.Command(nvcc, "-ptx", "-arch=compute_80", "-o", out, "kernels.cu").CombinedOutput(); err != nil {
		t.Fatalf("nvcc: %v\n%s", err, b)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The header names the compiler build; compare the code.
	strip := func(b []byte) []byte {
		var keep [][]byte
		for _, l := range bytes.Split(b, []byte("\n")) {
			if !bytes.HasPrefix(l, []byte("//")) {
				keep = append(keep, l)
			}
		}
		return bytes.Join(keep, []byte("\n"))
	}
	if !bytes.Equal(strip(fresh), strip([]byte(kernelsPTX))) {
		t.Fatal("kernels.ptx is stale: run go generate ./model/cuda")
	}
	ptxas, err := exec.LookPath("ptxas")
	if err != nil {
		t.Skip("no ptxas")
	}
	for _, arch := range []string{"sm_80", "sm_90"} {
		b, err := exec.Command(ptxas, "-arch="+arch, "-v", "-o", filepath.Join(dir, arch+".cubin"), out).CombinedOutput()
		if err != nil {
			t.Fatalf("ptxas %s: %v\n%s", arch, err, b)
		}
		if bytes.Contains(b, []byte("spill stores")) && !bytes.Contains(b, []byte(" 0 bytes spill stores")) {
			t.Logf("ptxas %s reports spills:\n%s", arch, b)
		}
	}
}

func TestBF16Conversions(t *testing.T) {
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{1, 0x3f80}, {-2, 0xc000}, {0, 0},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, odd rounds up
		{math.Float32frombits(0x3f808001), 0x3f81}, // above the tie
		{float32(math.Inf(1)), 0x7f80},
	} {
		if got := f32ToBF16(c.f); got != c.want {
			t.Errorf("f32ToBF16(%v) = %#x, want %#x", c.f, got, c.want)
		}
	}
	if v := bf16ToF32(f32ToBF16(float32(math.NaN()))); !math.IsNaN(float64(v)) {
		t.Error("NaN lost")
	}
	for _, c := range []struct {
		h    uint16
		want float32
	}{{0x3c00, 1}, {0xc000, -2}, {0x0001, 5.960464477539063e-08}, {0x7bff, 65504}, {0x8000, float32(math.Copysign(0, -1))}} {
		if got := f16ToF32(c.h); got != c.want || math.Signbit(float64(got)) != math.Signbit(float64(c.want)) {
			t.Errorf("f16ToF32(%#x) = %v, want %v", c.h, got, c.want)
		}
	}
	if !math.IsInf(float64(f16ToF32(0x7c00)), 1) {
		t.Error("f16 inf")
	}
}

func TestRopeInvFreq(t *testing.T) {
	f := ropeInvFreq(64, 10000)
	if len(f) != 32 || f[0] != 1 {
		t.Fatalf("inv freq %v", f[:2])
	}
	want := 1 / math.Pow(10000, 62.0/64)
	if math.Abs(float64(f[31])-want)/want > 1e-6 {
		t.Fatalf("inv freq[31] = %v, want %v", f[31], want)
	}
}

func TestArgPacking(t *testing.T) {
	if a := iArg(-1); a.bits != 0xffffffff || a.kind != argI32 {
		t.Fatalf("iArg(-1) = %+v: a 4-byte parameter reads the low half of its slot", a)
	}
	if a := fArg(1.5); a.bits != uint64(math.Float32bits(1.5)) || a.kind != argF32 {
		t.Fatalf("fArg = %+v", a)
	}
	if a := pArg(0xdeadbeef00); a.bits != 0xdeadbeef00 || a.kind != argPtr {
		t.Fatalf("pArg = %+v", a)
	}
	sig := []argKind{argPtr, argI32, argF32}
	if err := checkArgs("k", sig, []karg{pArg(1), iArg(2), fArg(3)}); err != nil {
		t.Fatal(err)
	}
	if err := checkArgs("k", sig, []karg{pArg(1), fArg(2), fArg(3)}); err == nil {
		t.Fatal("kind mismatch accepted")
	}
	if err := checkArgs("k", sig, []karg{pArg(1)}); err == nil {
		t.Fatal("count mismatch accepted")
	}
}

func TestDecodeStats(t *testing.T) {
	n := 2
	buf := make([]byte, 4*statsWords*n)
	put := func(k, i int, v uint32) {
		o := (k*n + i) * 4
		buf[o], buf[o+1], buf[o+2], buf[o+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	put(0, 0, 5)
	put(0, 1, 7)
	put(1, 0, 9)
	put(1, 1, math.MaxInt32)
	put(2, 1, math.Float32bits(0.75))
	put(4, 0, math.Float32bits(1.25))
	out := make([]TokenStats, n)
	decodeStats(buf, out)
	if out[0].Top1 != 5 || out[0].Top2 != 9 || out[0].Entropy != 1.25 || out[1].Top1 != 7 || out[1].Top2 != -1 || out[1].P1 != 0.75 {
		t.Fatalf("%+v", out)
	}
}
