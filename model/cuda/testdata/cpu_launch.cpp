// The tests' CPU build of kernels.cu (see cpu_shim.h):
//   g++ -std=c++20 -O1 -shared -fPIC -pthread -o libkernels_cpu.so cpu_launch.cpp
// exports emu_launch(name, grid, block, shared bytes, args): args are the
// 8-byte parameter slots cuLaunchKernel would read, converted to each
// kernel's parameter types.
#include "cpu_shim.h"
#include "../kernels.cu"

#include <cstring>
#include <type_traits>
#include <utility>

template <typename T> T emu_arg(uint64_t v) {
	if constexpr (std::is_pointer_v<T>) {
		return reinterpret_cast<T>(v);
	} else if constexpr (std::is_same_v<T, float>) {
		uint32_t b = (uint32_t)v;
		float f;
		std::memcpy(&f, &b, 4);
		return f;
	} else if constexpr (std::is_same_v<T, long>) {
		return (long)v;
	} else {
		static_assert(std::is_same_v<T, int>);
		return (int)(uint32_t)v;
	}
}

template <typename... P, size_t... I>
void emu_call(void (*k)(P...), const uint64_t *a, std::index_sequence<I...>) {
	k(emu_arg<P>(a[I])...);
}

template <typename... P> int emu_dispatch(void (*k)(P...), emu_dim3 g, emu_dim3 b, unsigned smem, const uint64_t *a) {
	return emu_run(g, b, smem, [&] { emu_call(k, a, std::index_sequence_for<P...>{}); });
}

#define E(name) \
	if (!std::strcmp(n, #name)) return emu_dispatch(name, g, b, smem, a);

extern "C" int emu_launch(const char *n, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
	unsigned smem, const uint64_t *a) {
	emu_dim3 g{gx, gy, gz}, b{bx, by, bz};
	E(embed_gather)
	E(rmsnorm_f32)
	E(add_rmsnorm)
	E(add_bias)
	E(qkv_rope)
	E(rope_rotate)
	E(attention)
	E(attention_part)
	E(attention_combine)
	E(attention_gqa)
	E(attention_gqa128)
	E(swiglu)
	E(add_into)
	E(ban_tokens)
	E(row_stats_part)
	E(row_stats_merge)
	E(gather_rows)
	E(gemm_bf16)
	return 1;
}
