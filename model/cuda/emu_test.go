package cuda

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
)

// emu is a backend that keeps "device" memory in Go slices and runs the
// kernels' Go references: the engine's buffer wiring, argument packing,
// product shapes, cache layout and graph replay run here exactly as on a
// GPU, every launch checked against the PTX signatures.
type emu struct {
	// native, when set, is emu_launch from testdata/cpu_launch.cpp: launches
	// run kernels.cu's own code compiled for the CPU, device pointers are
	// host addresses, and a guard after every allocation catches writes
	// past its end.
	native uintptr

	// binding emulates the context being current per OS thread: as on the
	// device, every operation must run on the goroutine holding bind, so a
	// test or engine path that forgets it fails here on every run instead
	// of on a GPU when the goroutine happens to change threads.
	binding

	sigs      map[string][]argKind
	blocks    []emuBlock // sorted by base
	next      devptr
	capturing bool
	recorded  []func() error
	launches  int
	replays   int // graph launches
	gemms     int
	freeBytes uint64
}

type emuBlock struct {
	base devptr
	mem  []uint64
	size int
}

const (
	emuGuardWords = 16
	emuPoison     = 0x7fc00001_7fc00001
)

func newEmu() (*emu, error) {
	sigs, err := parseSignatures(kernelsPTX)
	if err != nil {
		return nil, err
	}
	return &emu{sigs: sigs, next: 0x10000, freeBytes: 1 << 40}, nil
}

func (m *emu) bind() (func(), error) { return m.binding.lock(nil) }

func (m *emu) alloc(bytes int) (devptr, error) {
	if err := m.held("cuMemAlloc_v2"); err != nil {
		return 0, err
	}
	if bytes <= 0 {
		bytes = 4
	}
	b := emuBlock{base: m.next, mem: make([]uint64, (bytes+7)/8+emuGuardWords), size: bytes}
	// poison: reading memory nothing wrote gives NaN
	for i := range b.mem {
		b.mem[i] = emuPoison
	}
	if m.native != 0 {
		b.base = devptr(unsafe.Pointer(&b.mem[0])) // Go's heap does not move
		i := sort.Search(len(m.blocks), func(i int) bool { return m.blocks[i].base > b.base })
		m.blocks = append(m.blocks[:i], append([]emuBlock{b}, m.blocks[i:]...)...)
		return b.base, nil
	}
	m.blocks = append(m.blocks, b)
	m.next += devptr((bytes + 255) &^ 255)
	m.next += 256 // a gap, so that running off the end never lands in the next buffer
	return b.base, nil
}

func (m *emu) find(p devptr) (*emuBlock, int, error) {
	i := sort.Search(len(m.blocks), func(i int) bool { return m.blocks[i].base > p }) - 1
	if i < 0 || p >= m.blocks[i].base+devptr(m.blocks[i].size) {
		return nil, 0, fmt.Errorf("emu: address %#x not allocated", p)
	}
	return &m.blocks[i], int(p - m.blocks[i].base), nil
}

func (m *emu) free(p devptr) error {
	if p == 0 {
		return nil
	}
	if err := m.held("cuMemFree_v2"); err != nil {
		return err
	}
	for i := range m.blocks {
		if m.blocks[i].base == p {
			m.blocks = append(m.blocks[:i], m.blocks[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("emu: free of %#x: not an allocation", p)
}

// bytes is the memory from p to the end of its allocation.
func (m *emu) bytes(p devptr) ([]byte, error) {
	b, off, err := m.find(p)
	if err != nil {
		return nil, err
	}
	all := unsafe.Slice((*byte)(unsafe.Pointer(&b.mem[0])), b.size)
	return all[off:], nil
}

func (m *emu) f32(p devptr) []float32 {
	if p == 0 {
		return nil
	}
	b, err := m.bytes(p)
	if err != nil {
		panic(err)
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func (m *emu) u16(p devptr) []uint16 {
	if p == 0 {
		return nil
	}
	b, err := m.bytes(p)
	if err != nil {
		panic(err)
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
}

func (m *emu) i32(p devptr) []int32 {
	if p == 0 {
		return nil
	}
	b, err := m.bytes(p)
	if err != nil {
		panic(err)
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func (m *emu) upload(dst devptr, src []byte) error {
	if m.capturing {
		return errors.New("emu: host copy during capture")
	}
	if err := m.held("cuMemcpyHtoDAsync_v2"); err != nil {
		return err
	}
	b, err := m.bytes(dst)
	if err != nil {
		return err
	}
	if len(src) > len(b) {
		return fmt.Errorf("emu: upload of %d bytes into %d", len(src), len(b))
	}
	copy(b, src)
	return nil
}

func (m *emu) download(dst []byte, src devptr) error {
	if m.capturing {
		return errors.New("emu: host copy during capture")
	}
	if err := m.held("cuMemcpyDtoHAsync_v2"); err != nil {
		return err
	}
	b, err := m.bytes(src)
	if err != nil {
		return err
	}
	if len(dst) > len(b) {
		return fmt.Errorf("emu: download of %d bytes from %d", len(dst), len(b))
	}
	copy(dst, b)
	return nil
}

// run executes (or records, while capturing) one piece of stream work.
func (m *emu) run(f func() error) error {
	if err := m.held("stream work"); err != nil {
		return err
	}
	if m.capturing {
		m.recorded = append(m.recorded, f)
		return nil
	}
	return f()
}

func (m *emu) copyD(dst, src devptr, n int) error {
	return m.run(func() error {
		d, err := m.bytes(dst)
		if err != nil {
			return err
		}
		s, err := m.bytes(src)
		if err != nil {
			return err
		}
		if n > len(d) || n > len(s) {
			return fmt.Errorf("emu: copy of %d bytes out of range", n)
		}
		copy(d[:n], s[:n])
		return nil
	})
}

func (m *emu) fill32(dst devptr, v uint32, n int) error {
	return m.run(func() error {
		d := m.i32(dst)
		if n > len(d) {
			return fmt.Errorf("emu: fill of %d words out of range", n)
		}
		for i := 0; i < n; i++ {
			d[i] = int32(v)
		}
		return nil
	})
}

func (m *emu) sync() error { return m.held("cuStreamSynchronize") }

func (m *emu) memInfo() (free, total uint64, err error) {
	return m.freeBytes, m.freeBytes, m.held("cuMemGetInfo_v2")
}

func (m *emu) beginCapture() error {
	if err := m.held("cuStreamBeginCapture_v2"); err != nil {
		return err
	}
	m.capturing, m.recorded = true, nil
	return nil
}

type emuGraph struct {
	m     *emu
	steps []func() error
}

func (m *emu) endCapture() (graph, error) {
	m.capturing = false
	if err := m.held("cuStreamEndCapture"); err != nil {
		return nil, err
	}
	g := &emuGraph{m: m, steps: m.recorded}
	m.recorded = nil
	return g, nil
}

func (g *emuGraph) launch() error {
	if err := g.m.held("cuGraphLaunch"); err != nil {
		return err
	}
	g.m.replays++
	for _, f := range g.steps {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func (g *emuGraph) destroy() {}

func (m *emu) gemm(g gemmArgs) error {
	if g.m <= 0 || g.n <= 0 || g.k <= 0 {
		return fmt.Errorf("emu: gemm %+v", g)
	}
	// bounds as cuBLAS would read them
	rowsA, colsA := g.k, g.m // column-major A is lda x cols
	if !g.transA {
		rowsA, colsA = g.m, g.k
	}
	rowsB, colsB := g.k, g.n
	if g.transB {
		rowsB, colsB = g.n, g.k
	}
	if g.lda < rowsA || g.ldb < rowsB || g.ldc < g.m {
		return fmt.Errorf("emu: gemm leading dimensions %+v", g)
	}
	return m.run(func() error {
		m.gemms++
		a, b, c := m.u16(g.a), m.u16(g.b), m.f32(g.c)
		if len(a) < g.lda*(colsA-1)+rowsA || len(b) < g.ldb*(colsB-1)+rowsB || len(c) < g.ldc*(g.n-1)+g.m {
			return fmt.Errorf("emu: gemm operands out of range %+v", g)
		}
		refGemmEx(g, a, b, c)
		return nil
	})
}

func (m *emu) launch(name string, grid, block dim3, smem int, args []karg) error {
	if err := checkArgs(name, m.sigs[name], args); err != nil {
		return err
	}
	if _, ok := m.sigs[name]; !ok {
		return fmt.Errorf("emu: no kernel %q", name)
	}
	if block.x*block.y*block.z > 1024 || block.x*block.y*block.z <= 0 {
		return fmt.Errorf("emu: kernel %s: block %v", name, block)
	}
	if smem > 48<<10 {
		return fmt.Errorf("emu: kernel %s: %d bytes of shared memory", name, smem)
	}
	if m.native != 0 {
		return m.run(func() error { return m.nativeLaunch(name, grid, block, smem, args) })
	}
	a := args
	p := func(i int) devptr { return devptr(a[i].bits) }
	n := func(i int) int { return int(int32(uint32(a[i].bits))) }
	f := func(i int) float32 { return math.Float32frombits(uint32(a[i].bits)) }
	return m.run(func() (err error) {
		defer func() {
			if r := recover(); r != nil { // an index out of range is a wiring bug
				err = fmt.Errorf("emu: kernel %s: %v", name, r)
			}
		}()
		m.launches++
		switch name {
		case "embed_gather":
			refEmbed(m.f32(p(0)), m.u16(p(1)), m.i32(p(2)), n(3), n(4), f(5))
			needGrid(grid, n(3))
		case "add_rmsnorm":
			refAddRMSNorm(m.u16(p(0)), m.u16(p(1)), m.f32(p(2)), m.f32(p(3)), m.f32(p(4)), m.i32(p(5)), m.f32(p(6)), n(7), n(8), f(9))
			needGrid(grid, n(7))
		case "rmsnorm_f32":
			refRMSNormF32(m.f32(p(0)), m.f32(p(1)), m.f32(p(2)), n(3), n(4), f(5))
		case "add_bias":
			refAddBias(m.f32(p(0)), m.f32(p(1)), n(2), n(3))
		case "qkv_rope":
			kc, vc, capy := m.kvAt(p(1), n(2), n(10), n(11))
			pos := m.i32(p(6))[:n(8)]
			for _, q := range pos {
				if q < 0 || int(q) >= capy {
					panic(fmt.Sprintf("qkv_rope writes position %d of a %d-position cache", q, capy))
				}
			}
			refQKVRope(m.f32(p(0)), kc, vc, m.f32(p(3)), m.f32(p(4)), m.f32(p(5)), pos, m.f32(p(7)),
				n(8), n(9), n(10), n(11), capy)
			needGrid(grid, n(8))
		case "rope_rotate":
			refRopeRotate(m.f32(p(0)), m.f32(p(1)), n(2), n(3), n(4), n(5), n(6), n(7))
			if grid.x != n(6) || grid.y != n(2) {
				panic(fmt.Sprintf("grid %v for %d positions of %d heads", grid, n(6), n(2)))
			}
		case "attention":
			if grid.x != n(6) || grid.y*attWarps < n(5) || block.x != 32*attWarps || smem != attSmemBytes(n(8)) {
				panic(fmt.Sprintf("attention launch grid %v block %v smem %d for %d rows, %d heads", grid, block, smem, n(5), n(6)))
			}
			kc, vc, capy := m.kvAt(p(3), n(4), n(7), n(8))
			needKeys(n(9), capy)
			refAttention(m.u16(p(0)), m.u16(p(1)), m.f32(p(2)), kc, vc, n(5), n(6), n(7), n(8), n(9), capy, f(10))
		case "attention_part":
			splits := grid.z
			if grid.x != n(6) || grid.y*attWarps < n(5) || smem != attSmemBytes(n(8)) || (splits-1)*n(11) >= n(9) || splits*n(11) < n(9) {
				panic(fmt.Sprintf("attention_part launch grid %v smem %d chunk %d for %d keys", grid, smem, n(11), n(9)))
			}
			kc, vc, capy := m.kvAt(p(3), n(4), n(7), n(8))
			needKeys(n(9), capy)
			refAttentionPart(m.f32(p(0)), m.f32(p(1)), m.f32(p(2)), kc, vc, n(5), n(6), n(7), n(8), n(9), capy, f(10), n(11), splits)
		case "attention_gqa", "attention_gqa128":
			nn, heads, kv, hd, L, chunk, splits := n(7), n(8), n(9), n(10), n(11), n(13), grid.z
			kernel, tq, tk, td := attTile(hd)
			if kernel != name || block.x != 256 || smem != 0 || grid.y != kv || grid.x*tq < nn*heads/kv || hd > td ||
				(splits-1)*chunk >= L || splits*chunk < L || chunk%tk != 0 {
				panic(fmt.Sprintf("attention_gqa launch grid %v block %v smem %d chunk %d for %d rows, %d heads, %d keys", grid, block, smem, chunk, nn, heads, L))
			}
			kc, vc, capy := m.kvAt(p(5), n(6), kv, hd)
			needKeys(L, capy)
			if p(2) == 0 {
				if splits != 1 {
					panic("attention_gqa without part over several chunks")
				}
				refAttention(m.u16(p(0)), m.u16(p(1)), m.f32(p(4)), kc, vc, nn, heads, kv, hd, L, capy, f(12))
			} else {
				refAttentionPart(m.f32(p(2)), m.f32(p(3)), m.f32(p(4)), kc, vc, nn, heads, kv, hd, L, capy, f(12), chunk, splits)
			}
		case "attention_combine":
			refAttentionCombine(m.u16(p(0)), m.u16(p(1)), m.f32(p(2)), m.f32(p(3)), n(4), n(5), n(6), n(7))
			needGrid(grid, n(4))
		case "swiglu":
			refSwiGLU(m.u16(p(0)), m.u16(p(1)), m.f32(p(2)), m.f32(p(3)), n(4), n(5))
			needGrid(grid, n(4))
		case "add_into":
			y, x, cnt := m.f32(p(0)), m.f32(p(1)), int(int64(a[2].bits))
			for k := 0; k < cnt; k++ {
				y[k] += x[k]
			}
		case "ban_tokens":
			refBanTokens(m.f32(p(0)), m.i32(p(1)), m.i32(p(2)), n(3), n(4))
		case "row_stats_part":
			if grid.x < n(3) || grid.y != n(6) {
				panic(fmt.Sprintf("row_stats_part grid %v for %d rows in %d slices", grid, n(3), n(6)))
			}
			refRowStatsPart(m.f32(p(0)), m.f32(p(1)), m.f32(p(2)), n(3), n(4), f(5), n(6))
		case "row_stats_merge":
			nr := n(10)
			needGrid(grid, nr)
			st := refRowStatsMerge(m.f32(p(6)), m.f32(p(7)), m.f32(p(8)), m.i32(p(9)), nr, n(11), f(12), n(13))
			t1, t2, p1, p2, ent, sl := m.i32(p(0)), m.i32(p(1)), m.f32(p(2)), m.f32(p(3)), m.f32(p(4)), m.f32(p(5))
			for i, s := range st {
				t1[i], t2[i], p1[i], p2[i], ent[i], sl[i] = s.Top1, s.Top2, s.P1, s.P2, s.Entropy, s.ScoreLogP
			}
		case "gather_rows":
			refGatherRows(m.f32(p(0)), m.f32(p(1)), m.i32(p(2)), n(3), n(4))
		case "gemm_bf16":
			refGemmBF16(m.f32(p(0)), m.u16(p(1)), m.u16(p(2)), n(3), n(4), n(5), f(6), f(7))
			if grid.x*64 < n(4) || grid.y*64 < n(3) || block.x != 16 || block.y != 16 {
				panic(fmt.Sprintf("gemm_bf16 grid %v block %v for %dx%d", grid, block, n(3), n(4)))
			}
		default:
			return fmt.Errorf("emu: kernel %s has no reference", name)
		}
		return nil
	})
}

// kvAt reads a cache descriptor (kv_at in kernels.cu: int64 address, int64
// capacity) when the launch runs, as the kernels do, and returns the
// layer's keys and values; it panics (caught in launch) when the layer
// lies outside the allocation.
func (m *emu) kvAt(desc devptr, layer, kvHeads, hd int) (k, v []float32, capacity int) {
	d := m.i32(desc)
	addr := devptr(uint64(uint32(d[0])) | uint64(uint32(d[1]))<<32)
	capacity = int(int64(uint64(uint32(d[2])) | uint64(uint32(d[3]))<<32))
	span := kvHeads * capacity * hd
	k = m.f32(addr + devptr(4*2*layer*span))
	if capacity <= 0 || len(k) < 2*span {
		panic(fmt.Sprintf("cache descriptor %#x (capacity %d): layer %d outside the allocation", addr, capacity, layer))
	}
	return k[:span], k[span : 2*span], capacity
}

// needKeys panics when an attention reads more positions than its cache holds.
func needKeys(L, capacity int) {
	if L > capacity {
		panic(fmt.Sprintf("attention over %d keys of a %d-position cache", L, capacity))
	}
}

// needGrid panics (caught above) when a one-block-per-row launch does not
// cover its rows.
func needGrid(grid dim3, rows int) {
	if grid.x < rows {
		panic(fmt.Sprintf("grid %v does not cover %d rows", grid, rows))
	}
}

// nativeLaunch runs kernels.cu's code for the CPU, then checks every
// allocation's guard words: a kernel writing past a buffer fails here.
func (m *emu) nativeLaunch(name string, grid, block dim3, smem int, args []karg) error {
	m.launches++
	slots := make([]uint64, len(args)+1)
	for i, a := range args {
		slots[i] = a.bits
	}
	cname := append([]byte(name), 0)
	r, _, _ := purego.SyscallN(m.native, uintptr(unsafe.Pointer(&cname[0])), uintptr(grid.x), uintptr(grid.y), uintptr(grid.z),
		uintptr(block.x), uintptr(block.y), uintptr(block.z), uintptr(smem), uintptr(unsafe.Pointer(&slots[0])))
	runtime.KeepAlive(slots)
	runtime.KeepAlive(cname)
	switch r {
	case 0:
	case 2:
		return fmt.Errorf("emu: kernel %s deadlocked: a barrier some live thread never reaches", name)
	default:
		return fmt.Errorf("emu: no CPU build of kernel %s", name)
	}
	for _, b := range m.blocks {
		for _, w := range b.mem[(b.size+7)/8:] {
			if w != emuPoison {
				return fmt.Errorf("emu: kernel %s wrote past the end of the %d-byte buffer at %#x", name, b.size, b.base)
			}
		}
	}
	return nil
}

// newNativeEmu builds testdata/cpu_launch.cpp (kernels.cu for the CPU) with
// g++ once per test binary and returns an emulator running it.
func newNativeEmu(t *testing.T) *emu {
	t.Helper()
	nativeLib.once.Do(func() {
		gxx, err := exec.LookPath("g++")
		if err != nil {
			nativeLib.err = fmt.Errorf("g++ not found: %v", err)
			return
		}
		dir, err := os.MkdirTemp("", "diffill-kernels-cpu")
		if err != nil {
			nativeLib.err = err
			return
		}
		lib := filepath.Join(dir, "libkernels_cpu.so")
		if runtime.GOARCH != "amd64" {
			nativeLib.err = fmt.Errorf("the CPU build's fibers are x86-64 only (GOARCH %s)", runtime.GOARCH)
			return
		}
		cmd := exec.Command(gxx, "-std=c++20", "-O1", "-shared", "-fPIC", "-o", lib, "cpu_launch.cpp")
		cmd.Dir = "testdata"
		if out, err := cmd.CombinedOutput(); err != nil {
			nativeLib.err = fmt.Errorf("g++: %v\n%s", err, out)
			return
		}
		h, err := purego.Dlopen(lib, purego.RTLD_NOW)
		if err != nil {
			nativeLib.err = err
			return
		}
		nativeLib.fn, nativeLib.err = purego.Dlsym(h, "emu_launch")
	})
	if nativeLib.err != nil {
		if os.Getenv("DIFFILL_E2E") == "1" {
			t.Fatalf("CPU build of the kernels: %v", nativeLib.err)
		}
		t.Skipf("CPU build of the kernels: %v", nativeLib.err)
	}
	m, err := newEmu()
	if err != nil {
		t.Fatal(err)
	}
	m.native = nativeLib.fn
	return m
}

var nativeLib struct {
	once sync.Once
	fn   uintptr
	err  error
}

// TestBindRequired: device work outside bind, or on a goroutine other than
// the one holding it, fails with a clear error on every run (on a GPU it
// fails with CUDA_ERROR_INVALID_CONTEXT, or not, depending on which thread
// the goroutine happens to run on). It replays the H100 failure of
// TestGPUKernels: the parent test bound the device and its subtests, which
// t.Run starts on new goroutines, used it.
func TestBindRequired(t *testing.T) {
	m, err := newEmu()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.alloc(64); err == nil || !strings.Contains(err.Error(), "not bound") {
		t.Fatalf("alloc without bind: err = %v", err)
	}
	release, err := m.bind()
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.alloc(64)
	if err != nil {
		t.Fatalf("alloc under bind: %v", err)
	}
	t.Run("subtest of a bound parent", func(t *testing.T) {
		if _, err := m.alloc(64); err == nil || !strings.Contains(err.Error(), "another goroutine") {
			t.Fatalf("alloc on another goroutine: err = %v", err)
		}
		if err := m.upload(p, make([]byte, 8)); err == nil {
			t.Fatal("upload on another goroutine accepted")
		}
		if err := m.launch("add_into", d1(1), d1(32), 0, []karg{pArg(p), pArg(p), lArg(1)}); err == nil {
			t.Fatal("launch on another goroutine accepted")
		}
	})
	if err := m.free(p); err != nil {
		t.Fatal(err)
	}
	release()
	if err := m.sync(); err == nil {
		t.Fatal("sync after release accepted")
	}
	// The engine's entry points bind for themselves, from any goroutine.
	tc := tinyConfigs[0]
	e, err := newEngine(m, tc.cfg, testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 5), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, 3*tc.cfg.Vocab)
			errs[i] = e.Forward(context.Background(), &Batch{Tokens: []int32{1, 2, int32(i)}}, out)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}
