// cpu_shim.h compiles kernels.cu as C++ for the CPU, so that the tests can
// run the very kernel code the GPU runs (not only its Go references) on a
// machine without a GPU:
//
//   g++ -std=c++20 -O1 -shared -fPIC -pthread -include cpu_shim.h -x c++ kernels.cu -o libkernels_cpu.so
//
// Each block runs as blockDim fibers on one OS thread (x86-64 only):
// __syncthreads is a barrier over the block, a warp shuffle a two-phase
// exchange over the warp's 32 fibers, __shared__ variables are statics
// (blocks of a launch run one after another), and a fiber that returns drops
// out of both barriers, as an exited GPU thread no longer holds
// __syncthreads back. Launches are serialised; device pointers are host
// addresses.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct emu_dim3 {
	unsigned x, y, z;
};

// The current fiber's indices (set by the scheduler before it resumes one).
inline emu_dim3 threadIdx, blockIdx;
inline emu_dim3 blockDim, gridDim;
inline void *emu_dyn_smem;

// Fibers: every thread of a block is a fiber with its own stack, all run
// on one OS thread; a barrier parks the fiber and switches back to the
// scheduler, which releases the block barrier once every live fiber waits
// there and a warp barrier once every live fiber of the warp does. A fiber
// that returns no longer counts (as an exited GPU thread for __syncthreads).
extern "C" void emu_switch(void **save, void *to);
__asm__(R"(
	.text
	.globl emu_switch
	.type emu_switch,@function
emu_switch:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, (%rdi)
	movq %rsi, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret
	.size emu_switch, .-emu_switch
)");

enum { EMU_RUN = 0, EMU_BLOCK = 1, EMU_WARP = 2, EMU_DONE = 3 };

struct emu_fiber {
	void *sp;
	int state;
	emu_dim3 tid;
	unsigned lin;
};

inline std::vector<emu_fiber> emu_fibers;
inline emu_fiber *emu_self;
inline void *emu_sched_sp;
inline void (*emu_body)(void *);
inline void *emu_body_arg;
inline std::vector<uint64_t> emu_exchange; // [warp][32]

inline void emu_yield(int state) {
	emu_self->state = state;
	emu_switch(&emu_self->sp, emu_sched_sp);
}

inline void emu_fiber_main() {
	emu_body(emu_body_arg);
	emu_yield(EMU_DONE);
	__builtin_trap(); // never resumed
}

inline void __syncthreads() { emu_yield(EMU_BLOCK); }

template <typename T> inline T emu_shfl(T v, int src) {
	static_assert(sizeof(T) <= 8);
	unsigned lane = emu_self->lin % 32, warp = emu_self->lin / 32;
	uint64_t bits = 0;
	std::memcpy(&bits, &v, sizeof(T));
	uint64_t *x = &emu_exchange[warp * 32];
	x[lane] = bits;
	emu_yield(EMU_WARP);
	uint64_t r = x[src & 31];
	emu_yield(EMU_WARP);
	T out;
	std::memcpy(&out, &r, sizeof(T));
	return out;
}
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int o) { return emu_shfl(v, (int)(emu_self->lin % 32) ^ o); }
template <typename T> inline T __shfl_sync(unsigned, T v, int src) { return emu_shfl(v, src); }

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(x)
#define DYN_SHARED(name) float *name = (float *)emu_dyn_smem

inline unsigned __float_as_uint(float f) {
	unsigned u;
	std::memcpy(&u, &f, 4);
	return u;
}
inline float __uint_as_float(unsigned u) {
	float f;
	std::memcpy(&f, &u, 4);
	return f;
}
inline int __float_as_int(float f) {
	int i;
	std::memcpy(&i, &f, 4);
	return i;
}
inline float __int_as_float(int i) {
	float f;
	std::memcpy(&f, &i, 4);
	return f;
}
struct alignas(16) float4 {
	float x, y, z, w;
};
inline float __fmul_rn(float a, float b) { return a * b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// emu_run runs the grid's blocks one after another, each as block-many
// fibers of f. It returns nonzero on a deadlock (a barrier some live fiber
// never reaches).
template <typename F> int emu_run(emu_dim3 grid, emu_dim3 block, unsigned smem, F f) {
	static std::mutex one;
	std::lock_guard<std::mutex> lock(one);
	const size_t stackBytes = 64 << 10;
	unsigned n = block.x * block.y * block.z, warps = (n + 31) / 32;
	std::vector<char> dyn(smem + 16), stacks((size_t)n * stackBytes + 16);
	emu_dyn_smem = dyn.data();
	gridDim = grid;
	blockDim = block;
	emu_exchange.assign((size_t)warps * 32, 0);
	emu_body = [](void *p) { (*(F *)p)(); };
	emu_body_arg = &f;
	for (unsigned bz = 0; bz < grid.z; bz++)
		for (unsigned by = 0; by < grid.y; by++)
			for (unsigned bx = 0; bx < grid.x; bx++) {
				blockIdx = {bx, by, bz};
				emu_fibers.assign(n, emu_fiber{});
				for (unsigned t = 0; t < n; t++) {
					emu_fiber &fb = emu_fibers[t];
					fb.lin = t;
					fb.tid = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
					uintptr_t top = ((uintptr_t)(stacks.data() + (size_t)(t + 1) * stackBytes)) & ~(uintptr_t)15;
					void **sp = (void **)top;
					*--sp = nullptr;                     // the entry's return address (never used)
					*--sp = (void *)&emu_fiber_main;     // emu_switch's ret lands here
					for (int r = 0; r < 6; r++) *--sp = nullptr; // rbp rbx r12-r15
					fb.sp = sp;
				}
				for (;;) {
					for (auto &fb : emu_fibers) {
						if (fb.state != EMU_RUN) continue;
						emu_self = &fb;
						threadIdx = fb.tid;
						emu_switch(&emu_sched_sp, fb.sp);
					}
					unsigned alive = 0, atBlock = 0;
					for (auto &fb : emu_fibers) {
						alive += fb.state != EMU_DONE;
						atBlock += fb.state == EMU_BLOCK;
					}
					if (alive == 0) break;
					bool released = false;
					for (unsigned w = 0; w < warps; w++) {
						unsigned live = 0, waiting = 0;
						for (unsigned t = w * 32; t < n && t < w * 32 + 32; t++) {
							live += emu_fibers[t].state != EMU_DONE;
							waiting += emu_fibers[t].state == EMU_WARP;
						}
						if (live > 0 && waiting == live) {
							for (unsigned t = w * 32; t < n && t < w * 32 + 32; t++)
								if (emu_fibers[t].state == EMU_WARP) emu_fibers[t].state = EMU_RUN;
							released = true;
						}
					}
					if (!released && atBlock == alive) {
						for (auto &fb : emu_fibers)
							if (fb.state == EMU_BLOCK) fb.state = EMU_RUN;
						released = true;
					}
					if (!released) return 2; // deadlock
				}
			}
	return 0;
}
