// diffill's own CUDA kernels for the bidirectional transformer forward pass
// and the sampler's reductions. Compiled to PTX (kernels.ptx, embedded in the
// Go binary) so the driver JIT-compiles it for whatever card it finds:
//
//	nvcc -ptx -arch=compute_80 -o kernels.ptx kernels.cu
//
// Conventions shared with the Go side (launch.go):
//   - activations and the K/V cache are float32; weights are bf16 (raw
//     uint16 bits) and multiply through cuBLAS with float32 accumulation;
//   - kernels that feed a matrix product write bf16 "hi" and, when lo is not
//     NULL, the rounding remainder lo = bf16(x - hi), so that W·hi + W·lo
//     carries ~16 mantissa bits of x instead of 8 (the precise mode);
//   - a K/V cache is one allocation [layer][k|v][kvHeads][capacity][headDim]
//     named by a descriptor in device memory (kvcache below), so that a
//     captured graph replays on any cache the engine points it at;
//   - RoPE is the rotate-half (GPT-NeoX) form used by Qwen2 and LLaDA, with
//     the angle pos*invFreq[i] rounded to float32 as transformers does.
//
// No cuda_bf16.h: the bf16 conversions are spelled out so that the source
// builds the same with nvcc 11.8 and 13.

#define WARP 32

// The dynamic shared memory of a launch. (cpu_shim.h, which compiles these
// kernels for the CPU in the tests, defines it differently.)
#ifndef DYN_SHARED
#define DYN_SHARED(name) extern __shared__ float name[]
#endif

typedef unsigned short bf16;

__device__ __forceinline__ float bf2f(bf16 h) { return __uint_as_float(((unsigned)h) << 16); }

// Round to nearest even; NaN stays a (quiet) NaN.
__device__ __forceinline__ bf16 f2bf(float f) {
	unsigned u = __float_as_uint(f);
	if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)((u >> 16) | 0x40u);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (bf16)(u >> 16);
}

__device__ __forceinline__ void store_split(bf16 *hi, bf16 *lo, long i, float v) {
	bf16 h = f2bf(v);
	hi[i] = h;
	if (lo) lo[i] = f2bf(v - bf2f(h));
}

__device__ __forceinline__ float warp_sum(float v) {
	for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ float warp_max(float v) {
	for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

// Sum over the block; every thread gets the result. blockDim.x is a multiple
// of 32 and at most 1024; red holds 32 floats.
__device__ float block_sum(float v, float *red) {
	int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
	v = warp_sum(v);
	__syncthreads(); // red may still be read by a previous call
	if (lane == 0) red[w] = v;
	__syncthreads();
	v = lane < nw ? red[lane] : 0.f;
	return warp_sum(v);
}

// A cache descriptor: desc[0] the cache's device address, desc[1] its
// capacity in positions. kv_at returns layer's keys and values.
struct kvcache {
	float *k, *v;
	int capacity;
};

__device__ __forceinline__ kvcache kv_at(const long long *desc, int layer, int kvHeads, int hd) {
	kvcache c;
	c.capacity = (int)desc[1];
	long span = (long)kvHeads * c.capacity * hd;
	c.k = (float *)desc[0] + 2 * layer * span;
	c.v = c.k + span;
	return c;
}

// x[i][:] = scale * embed[ids[i]][:] for i < n. grid (n), any block size.
extern "C" __global__ void embed_gather(float *x, const bf16 *embed, const int *ids, int n, int hidden, float scale) {
	int i = blockIdx.x;
	if (i >= n) return;
	const bf16 *row = embed + (long)ids[i] * hidden;
	float *out = x + (long)i * hidden;
	for (int d = threadIdx.x; d < hidden; d += blockDim.x) out[d] = scale == 1.f ? bf2f(row[d]) : bf2f(row[d]) * scale;
}

// RMSNorm after a residual add: v = x[r] + (y[r] + y2[r]) (y2 may be NULL;
// y NULL: v = x[r], a plain RMSNorm), normalised as
// v*rsqrt(mean(v^2)+eps)*w into bf16 hi (and lo), r = rows ? rows[i] : i;
// without rows v is also written back to x. The
// precise mode's o and down products (hi and lo halves of the activations
// in one product, y2 = the lo half's rows) are added to the residual here
// instead of by a second product with beta 1. grid (n), block a multiple of 32.
extern "C" __global__ void add_rmsnorm(bf16 *hi, bf16 *lo, float *x, const float *y, const float *y2, const int *rows,
	const float *w, int n, int hidden, float eps) {
	__shared__ float red[WARP];
	int i = blockIdx.x;
	if (i >= n) return;
	int r = rows ? rows[i] : i;
	float *xr = x + (long)r * hidden;
	const float *yr = y ? y + (long)r * hidden : 0;
	const float *y2r = y2 ? y2 + (long)r * hidden : 0;
	float ss = 0.f;
	for (int d = threadIdx.x; d < hidden; d += blockDim.x) {
		float v = xr[d];
		if (yr) v += y2r ? yr[d] + y2r[d] : yr[d];
		ss += v * v;
	}
	ss = block_sum(ss, red);
	float inv = rsqrtf(ss / (float)hidden + eps);
	long base = (long)i * hidden;
	for (int d = threadIdx.x; d < hidden; d += blockDim.x) {
		float v = xr[d]; // this thread's own element: no other thread writes it
		if (yr) {
			v += y2r ? yr[d] + y2r[d] : yr[d];
			if (!rows) xr[d] = v;
		}
		store_split(hi, lo, base + d, w[d] * (v * inv));
	}
}

// Same normalisation, float32 out (for the tests and for a float32 head).
extern "C" __global__ void rmsnorm_f32(float *out, const float *x, const float *w, int n, int hidden, float eps) {
	__shared__ float red[WARP];
	int i = blockIdx.x;
	if (i >= n) return;
	const float *xr = x + (long)i * hidden;
	float ss = 0.f;
	for (int d = threadIdx.x; d < hidden; d += blockDim.x) ss += xr[d] * xr[d];
	ss = block_sum(ss, red);
	float inv = rsqrtf(ss / (float)hidden + eps);
	for (int d = threadIdx.x; d < hidden; d += blockDim.x) out[(long)i * hidden + d] = w[d] * (xr[d] * inv);
}

// y[i][j] += b[j]. grid (n), any block.
extern "C" __global__ void add_bias(float *y, const float *b, int n, int cols) {
	int i = blockIdx.x;
	if (i >= n) return;
	for (int j = threadIdx.x; j < cols; j += blockDim.x) y[(long)i * cols + j] += b[j];
}

// Splits the fused projection qkv ([n][(heads+2*kvHeads)*hd], plus qkv2 of
// the same shape when not NULL: the product of the activations' bf16
// remainder; plus bias when not NULL) into rotated queries q
// ([n][heads][hd]) and the layer's cache: k rotated and v as is at slot
// pos[i]. grid (n), any block.
extern "C" __global__ void qkv_rope(float *q, const long long *cache, int layer, const float *qkv, const float *qkv2,
	const float *bias, const int *pos, const float *invFreq, int n, int heads, int kvHeads, int hd) {
	int i = blockIdx.x;
	if (i >= n) return;
	kvcache kv = kv_at(cache, layer, kvHeads, hd);
	float *kc = kv.k, *vc = kv.v;
	int capacity = kv.capacity;
	int p = pos[i];
	int half = hd / 2;
	int width = (heads + 2 * kvHeads) * hd;
	const float *row = qkv + (long)i * width;
	const float *row2 = qkv2 ? qkv2 + (long)i * width : 0;
	// Rotations: one work item per (head, pair) over query and key heads.
	int pairs = (heads + kvHeads) * half;
	for (int t = threadIdx.x; t < pairs; t += blockDim.x) {
		int h = t / half, j = t % half;
		int c0 = h * hd + j, c1 = c0 + half;
		float x0 = row[c0], x1 = row[c1];
		if (row2) { x0 += row2[c0]; x1 += row2[c1]; }
		if (bias) { x0 += bias[c0]; x1 += bias[c1]; }
		float s, c;
		sincosf(__fmul_rn((float)p, invFreq[j]), &s, &c);
		float y0 = x0 * c - x1 * s, y1 = x1 * c + x0 * s;
		if (h < heads) {
			float *qr = q + ((long)i * heads + h) * hd;
			qr[j] = y0;
			qr[j + half] = y1;
		} else {
			float *kr = kc + ((long)(h - heads) * capacity + p) * hd;
			kr[j] = y0;
			kr[j + half] = y1;
		}
	}
	int vw = kvHeads * hd;
	for (int t = threadIdx.x; t < vw; t += blockDim.x) {
		int g = t / hd, d = t % hd;
		int c = (heads + kvHeads) * hd + t;
		float v = row[c];
		if (row2) v += row2[c];
		if (bias) v += bias[c];
		vc[((long)g * capacity + p) * hd + d] = v;
	}
}

// Rotates cached keys at positions [from, from+count) of every kv head by
// delta positions (RoPE is relative, so this is how a cache shift keeps its
// keys valid). grid (count, kvHeads), any block.
extern "C" __global__ void rope_rotate(float *kc, const float *invFreq, int kvHeads, int hd, int capacity,
	int from, int count, int delta) {
	int t = blockIdx.x, g = blockIdx.y;
	if (t >= count || g >= kvHeads) return;
	int half = hd / 2;
	float *kr = kc + ((long)g * capacity + from + t) * hd;
	for (int j = threadIdx.x; j < half; j += blockDim.x) {
		float s, c;
		sincosf(__fmul_rn((float)delta, invFreq[j]), &s, &c);
		float x0 = kr[j], x1 = kr[j + half];
		kr[j] = x0 * c - x1 * s;
		kr[j + half] = x1 * c + x0 * s;
	}
}

#define ATT_WARPS 8
#define ATT_KEYS 32
#define ATT_MAXD 128

// Online-softmax attention of one warp's query row over the keys
// [k0, k1) of one kv head, in tiles of 32 staged in shared memory by the
// whole block (every warp of the block must call it with the same range).
// In a tile lane j scores key j; for the values each lane owns dimensions
// d = lane + 32c. m, l and acc carry the running max, sum and weighted values.
__device__ __forceinline__ void attend_keys(float *sm, const float *qw, const float *kg, const float *vg, int hd,
	int k0, int k1, float scale, bool active, float &m, float &l, float acc[ATT_MAXD / WARP]) {
	int ks = hd | 1; // odd row stride: lane j reading K[j][d] hits bank (j*ks+d)%32, all distinct
	float *K = sm;                // [ATT_KEYS][ks]
	float *V = K + ATT_KEYS * ks; // [ATT_KEYS][hd]
	int lane = threadIdx.x % WARP;
	for (int t0 = k0; t0 < k1; t0 += ATT_KEYS) {
		int nk = min(ATT_KEYS, k1 - t0);
		__syncthreads(); // previous tile fully read (and the query rows written, first time)
		for (int e = threadIdx.x; e < nk * hd; e += blockDim.x) {
			int j = e / hd, d = e % hd;
			K[j * ks + d] = kg[(long)(t0 + j) * hd + d];
			V[j * hd + d] = vg[(long)(t0 + j) * hd + d];
		}
		__syncthreads();
		if (!active) continue;
		float s = -INFINITY;
		if (lane < nk) {
			float dot = 0.f;
			const float *kr = K + lane * ks;
			for (int d = 0; d < hd; d++) dot += qw[d] * kr[d];
			s = dot * scale;
		}
		float mn = fmaxf(m, warp_max(s));
		float corr = expf(m - mn); // m = -inf the first time: 0
		float p = lane < nk ? expf(s - mn) : 0.f;
		l = l * corr + warp_sum(p);
		m = mn;
#pragma unroll
		for (int c = 0; c < ATT_MAXD / WARP; c++) acc[c] *= corr;
		for (int j = 0; j < nk; j++) {
			float pj = __shfl_sync(0xffffffffu, p, j);
			const float *vr = V + j * hd;
#pragma unroll
			for (int c = 0; c < ATT_MAXD / WARP; c++) {
				int d = lane + c * WARP;
				if (d < hd) acc[c] += pj * vr[d];
			}
		}
	}
}

// Bidirectional attention of n query rows over keys [0, L) of the cache.
// One warp per (query row, head); a block holds ATT_WARPS rows of one head.
// grid (heads, ceil(n/ATT_WARPS)), block 32*ATT_WARPS, dynamic shared memory
// attSmemBytes(hd) (engine.go).
extern "C" __global__ void __launch_bounds__(WARP *ATT_WARPS)
	attention(bf16 *hi, bf16 *lo, const float *q, const long long *cache, int layer, int n, int heads,
		int kvHeads, int hd, int L, float scale) {
	DYN_SHARED(sm);
	kvcache kv = kv_at(cache, layer, kvHeads, hd);
	const float *kc = kv.k, *vc = kv.v;
	int capacity = kv.capacity;
	int h = blockIdx.x, g = h / (heads / kvHeads);
	int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
	int i = blockIdx.y * ATT_WARPS + w;
	bool active = i < n;
	float *qw = sm + ATT_KEYS * (hd | 1) + ATT_KEYS * hd + w * hd;
	if (active)
		for (int d = lane; d < hd; d += WARP) qw[d] = q[((long)i * heads + h) * hd + d];
	float m = -INFINITY, l = 0.f;
	float acc[ATT_MAXD / WARP];
#pragma unroll
	for (int c = 0; c < ATT_MAXD / WARP; c++) acc[c] = 0.f;
	attend_keys(sm, qw, kc + (long)g * capacity * hd, vc + (long)g * capacity * hd, hd, 0, L, scale, active, m, l, acc);
	if (!active) return;
	float inv = 1.f / l;
	long base = (long)i * heads * hd + (long)h * hd;
#pragma unroll
	for (int c = 0; c < ATT_MAXD / WARP; c++) {
		int d = lane + c * WARP;
		if (d < hd) store_split(hi, lo, base + d, acc[c] * inv);
	}
}

// The same over the key chunk [z*chunk, min(L, (z+1)*chunk)) for z =
// blockIdx.z (split-K: few query rows over many keys leave most of the chip
// idle otherwise). Writes the chunk's running max and sum to ml
// ([splits][n][heads][2]) and its unnormalised values to part
// ([splits][n][heads][hd]); attention_combine merges the chunks.
// grid (heads, ceil(n/ATT_WARPS), splits).
extern "C" __global__ void __launch_bounds__(WARP *ATT_WARPS)
	attention_part(float *part, float *ml, const float *q, const long long *cache, int layer, int n, int heads,
		int kvHeads, int hd, int L, float scale, int chunk) {
	DYN_SHARED(sm);
	kvcache kv = kv_at(cache, layer, kvHeads, hd);
	const float *kc = kv.k, *vc = kv.v;
	int capacity = kv.capacity;
	int h = blockIdx.x, g = h / (heads / kvHeads), z = blockIdx.z;
	int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
	int i = blockIdx.y * ATT_WARPS + w;
	bool active = i < n;
	float *qw = sm + ATT_KEYS * (hd | 1) + ATT_KEYS * hd + w * hd;
	if (active)
		for (int d = lane; d < hd; d += WARP) qw[d] = q[((long)i * heads + h) * hd + d];
	float m = -INFINITY, l = 0.f;
	float acc[ATT_MAXD / WARP];
#pragma unroll
	for (int c = 0; c < ATT_MAXD / WARP; c++) acc[c] = 0.f;
	int k0 = z * chunk, k1 = min(L, k0 + chunk);
	attend_keys(sm, qw, kc + (long)g * capacity * hd, vc + (long)g * capacity * hd, hd, k0, k1, scale, active, m, l, acc);
	if (!active) return;
	long row = ((long)z * n + i) * heads + h;
	float *pr = part + row * hd;
#pragma unroll
	for (int c = 0; c < ATT_MAXD / WARP; c++) {
		int d = lane + c * WARP;
		if (d < hd) pr[d] = acc[c];
	}
	if (lane == 0) {
		ml[2 * row] = m;
		ml[2 * row + 1] = l;
	}
}

// Merges attention_part's (or attention_gqa's) chunks: out = sum_z
// e^(m_z-M) part_z / sum_z e^(m_z-M) l_z. A block merges heads blockIdx.y,
// blockIdx.y + gridDim.y, ... of row blockIdx.x, its threads over the
// dimensions. grid (n, heads) (or fewer heads per row), any block.
extern "C" __global__ void attention_combine(bf16 *hi, bf16 *lo, const float *part, const float *ml, int n,
	int heads, int hd, int splits) {
	int i = blockIdx.x;
	if (i >= n) return;
	for (int h = blockIdx.y; h < heads; h += gridDim.y) {
		float M = -INFINITY, den = 0.f;
		for (int z = 0; z < splits; z++) M = fmaxf(M, ml[2 * (((long)z * n + i) * heads + h)]);
		for (int z = 0; z < splits; z++) {
			long row = ((long)z * n + i) * heads + h;
			den += expf(ml[2 * row] - M) * ml[2 * row + 1];
		}
		for (int d = threadIdx.x; d < hd; d += blockDim.x) {
			float num = 0.f;
#pragma unroll 4
			for (int z = 0; z < splits; z++) {
				long row = ((long)z * n + i) * heads + h;
				num += expf(ml[2 * row] - M) * part[row * hd + d];
			}
			store_split(hi, lo, ((long)i * heads + h) * hd + d, num / den);
		}
	}
}

// Bidirectional attention as small matrix products in shared memory. A
// block takes TQ = 16*QA query vectors of one kv group (the group's heads
// share its keys, so a key tile in shared memory serves all of them: vector
// qi is row qi / R, head g*R + qi % R, R = heads / kvHeads) and walks the
// keys [z*chunk, min(L, (z+1)*chunk)) in tiles of TK = 16*KB with an online
// softmax. 256 threads as 16 x 16: thread (ty, tx) scores queries ty + 16a
// (a < QA) against keys tx + 16b (b < KB) and accumulates dimensions
// 4tx + 64c .. +3 (c < DC) of its queries' outputs; head dims up to
// TD = 64*DC, the rest zero-padded. Keys past the range and dimensions past
// hd are zero in the tiles, so poisoned cache slots never reach the sums.
// Without part: one chunk (gridDim.z = 1), the normalised output goes to
// hi/lo. With part: as attention_part, the chunk's unnormalised values and
// (max, sum) for attention_combine.
template <int QA, int KB, int DC>
__device__ __forceinline__ void attention_tiles(float *smem, bf16 *hi, bf16 *lo, float *part, float *ml, const float *q,
	const long long *cache, int layer, int n, int heads, int kvHeads, int hd, int L, float scale, int chunk) {
	const int TQ = 16 * QA, TK = 16 * KB, TD = 64 * DC;
	const int LD = TD + 4; // row stride of the Q, K and V tiles: float4-aligned, conflict-free reads
	const int LP = TK + 4; // row stride of the probability tile
	float *Qs = smem, *Ks = Qs + TQ * LD, *Vs = Ks + TK * LD, *Ps = Vs + TK * LD;
	int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
	int g = blockIdx.y, z = blockIdx.z, R = heads / kvHeads, nq = n * R;
	int q0 = blockIdx.x * TQ;
	for (int e = tid; e < TQ * TD; e += 256) {
		int r = e / TD, d = e % TD, qi = q0 + r;
		float v = 0.f;
		if (qi < nq && d < hd) v = q[((long)(qi / R) * heads + g * R + qi % R) * hd + d];
		Qs[r * LD + d] = v;
	}
	kvcache kv = kv_at(cache, layer, kvHeads, hd);
	const float *kg = kv.k + (long)g * kv.capacity * hd, *vg = kv.v + (long)g * kv.capacity * hd;
	int k0 = z * chunk, k1 = min(L, k0 + chunk);
	float m[QA], l[QA], o[QA][DC][4];
#pragma unroll
	for (int a = 0; a < QA; a++) {
		m[a] = -INFINITY;
		l[a] = 0.f;
#pragma unroll
		for (int c = 0; c < DC; c++)
#pragma unroll
			for (int u = 0; u < 4; u++) o[a][c][u] = 0.f;
	}
	for (int t0 = k0; t0 < k1; t0 += TK) {
		__syncthreads(); // the previous tile is fully read
		for (int e = tid; e < TK * TD; e += 256) {
			int j = e / TD, d = e % TD;
			bool in = t0 + j < k1 && d < hd;
			Ks[j * LD + d] = in ? kg[(long)(t0 + j) * hd + d] : 0.f;
			Vs[j * LD + d] = in ? vg[(long)(t0 + j) * hd + d] : 0.f;
		}
		__syncthreads();
		float s[QA][KB];
#pragma unroll
		for (int a = 0; a < QA; a++)
#pragma unroll
			for (int b = 0; b < KB; b++) s[a][b] = 0.f;
#pragma unroll
		for (int d = 0; d < TD; d += 4) {
			float4 qv[QA], kv4[KB];
#pragma unroll
			for (int a = 0; a < QA; a++) qv[a] = *(const float4 *)&Qs[(ty + 16 * a) * LD + d];
#pragma unroll
			for (int b = 0; b < KB; b++) kv4[b] = *(const float4 *)&Ks[(tx + 16 * b) * LD + d];
#pragma unroll
			for (int a = 0; a < QA; a++)
#pragma unroll
				for (int b = 0; b < KB; b++)
					s[a][b] += qv[a].x * kv4[b].x + qv[a].y * kv4[b].y + qv[a].z * kv4[b].z + qv[a].w * kv4[b].w;
		}
#pragma unroll
		for (int a = 0; a < QA; a++) {
			// the 16 threads of a query row are one half of a warp: reduce over tx
			float mx = -INFINITY;
#pragma unroll
			for (int b = 0; b < KB; b++) {
				s[a][b] = t0 + tx + 16 * b < k1 ? s[a][b] * scale : -INFINITY;
				mx = fmaxf(mx, s[a][b]);
			}
			for (int off = 8; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
			float mn = fmaxf(m[a], mx); // finite: every tile holds a key of the range
			float corr = expf(m[a] - mn); // m = -inf the first time: 0
			float sum = 0.f;
#pragma unroll
			for (int b = 0; b < KB; b++) {
				float p = expf(s[a][b] - mn);
				sum += p;
				Ps[(ty + 16 * a) * LP + tx + 16 * b] = p;
			}
			for (int off = 8; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
			l[a] = l[a] * corr + sum;
			m[a] = mn;
#pragma unroll
			for (int c = 0; c < DC; c++)
#pragma unroll
				for (int u = 0; u < 4; u++) o[a][c][u] *= corr;
		}
		__syncthreads();
#pragma unroll
		for (int j = 0; j < TK; j += 4) {
			float4 pv[QA];
#pragma unroll
			for (int a = 0; a < QA; a++) pv[a] = *(const float4 *)&Ps[(ty + 16 * a) * LP + j];
#pragma unroll
			for (int c = 0; c < DC; c++) {
				float4 vv[4];
#pragma unroll
				for (int u = 0; u < 4; u++) vv[u] = *(const float4 *)&Vs[(j + u) * LD + 4 * tx + 64 * c];
#pragma unroll
				for (int a = 0; a < QA; a++) {
					o[a][c][0] += pv[a].x * vv[0].x + pv[a].y * vv[1].x + pv[a].z * vv[2].x + pv[a].w * vv[3].x;
					o[a][c][1] += pv[a].x * vv[0].y + pv[a].y * vv[1].y + pv[a].z * vv[2].y + pv[a].w * vv[3].y;
					o[a][c][2] += pv[a].x * vv[0].z + pv[a].y * vv[1].z + pv[a].z * vv[2].z + pv[a].w * vv[3].z;
					o[a][c][3] += pv[a].x * vv[0].w + pv[a].y * vv[1].w + pv[a].z * vv[2].w + pv[a].w * vv[3].w;
				}
			}
		}
	}
#pragma unroll
	for (int a = 0; a < QA; a++) {
		int qi = q0 + ty + 16 * a;
		if (qi >= nq) continue;
		int i = qi / R, h = g * R + qi % R;
		long row = ((long)z * n + i) * heads + h;
		float inv = 1.f / l[a];
#pragma unroll
		for (int c = 0; c < DC; c++)
#pragma unroll
			for (int u = 0; u < 4; u++) {
				int d = 4 * tx + 64 * c + u;
				if (d >= hd) continue;
				if (!part) store_split(hi, lo, ((long)i * heads + h) * hd + d, o[a][c][u] * inv);
				else part[row * hd + d] = o[a][c][u];
			}
		if (part && tx == 0) {
			ml[2 * row] = m[a];
			ml[2 * row + 1] = l[a];
		}
	}
}

// attention_tiles for head dims up to 64: 64 query vectors, keys in tiles
// of 32 (43 KB of shared memory). grid (ceil(n*R/64), kvHeads, splits),
// block 256.
extern "C" __global__ void __launch_bounds__(256)
	attention_gqa(bf16 *hi, bf16 *lo, float *part, float *ml, const float *q, const long long *cache, int layer, int n,
		int heads, int kvHeads, int hd, int L, float scale, int chunk) {
	__shared__ float4 smem4[(64 * 68 + 2 * 32 * 68 + 64 * 36) / 4];
	attention_tiles<4, 2, 1>((float *)smem4, hi, lo, part, ml, q, cache, layer, n, heads, kvHeads, hd, L, scale, chunk);
}

// attention_tiles for head dims up to 128: 32 query vectors, keys in tiles
// of 16 (36 KB). grid (ceil(n*R/32), kvHeads, splits), block 256.
extern "C" __global__ void __launch_bounds__(256)
	attention_gqa128(bf16 *hi, bf16 *lo, float *part, float *ml, const float *q, const long long *cache, int layer,
		int n, int heads, int kvHeads, int hd, int L, float scale, int chunk) {
	__shared__ float4 smem4[(32 * 132 + 2 * 16 * 132 + 32 * 20) / 4];
	attention_tiles<2, 1, 2>((float *)smem4, hi, lo, part, ml, q, cache, layer, n, heads, kvHeads, hd, L, scale, chunk);
}

// out = silu(gate) * up from gu = [n][gate(inter) | up(inter)] (plus gu2
// of the same shape when not NULL: the remainder's product). grid (n), any block.
extern "C" __global__ void swiglu(bf16 *hi, bf16 *lo, const float *gu, const float *gu2, int n, int inter) {
	int i = blockIdx.x;
	if (i >= n) return;
	const float *g = gu + (long)i * 2 * inter, *u = g + inter;
	const float *g2 = gu2 ? gu2 + (long)i * 2 * inter : 0, *u2 = gu2 ? g2 + inter : 0;
	for (int j = threadIdx.x; j < inter; j += blockDim.x) {
		float a = g[j], b = u[j];
		if (g2) { a += g2[j]; b += u2[j]; }
		store_split(hi, lo, (long)i * inter + j, a / (1.f + expf(-a)) * b);
	}
}

// y[k] += x[k] for k < count. Any grid and block.
extern "C" __global__ void add_into(float *y, const float *x, long count) {
	for (long k = (long)blockIdx.x * blockDim.x + threadIdx.x; k < count; k += (long)gridDim.x * blockDim.x) y[k] += x[k];
}

// Sets to -inf, in row i, the logits of ids[offsets[i] .. offsets[i+1]):
// tokens the sampler must not pick there (the mask token, an end token
// where a span cannot end, newlines in a single-line span...).
// grid (n), any block.
extern "C" __global__ void ban_tokens(float *logits, const int *ids, const int *offsets, int n, int vocab) {
	int i = blockIdx.x;
	if (i >= n) return;
	for (int t = offsets[i] + threadIdx.x; t < offsets[i + 1]; t += blockDim.x) logits[(long)i * vocab + ids[t]] = -INFINITY;
}

// Running summary of a row of scaled logits x: m = max, s = sum exp(x-m),
// t = sum exp(x-m)*(x-m) (entropy = log s - t/s), and the two largest values
// with their indices (ties: lower index first).
struct rowstat {
	float m, s, t, v1, v2;
	int i1, i2;
};

__device__ __forceinline__ bool better(float v, int i, float w, int j) { return v > w || (v == w && i < j); }

__device__ void stat_add(rowstat &a, float x, int i) {
	if (x == -INFINITY) return;
	if (x > a.m) {
		float e = expf(a.m - x), dm = a.m - x; // a.m = -inf on first: e = 0, s = 0
		a.t = a.s > 0.f ? e * (a.t + dm * a.s) : 0.f;
		a.s = a.s * e + 1.f;
		a.m = x;
	} else {
		float e = expf(x - a.m);
		a.s += e;
		a.t += e * (x - a.m);
	}
	if (better(x, i, a.v1, a.i1)) {
		a.v2 = a.v1; a.i2 = a.i1;
		a.v1 = x; a.i1 = i;
	} else if (better(x, i, a.v2, a.i2)) {
		a.v2 = x; a.i2 = i;
	}
}

__device__ void stat_merge(rowstat &a, const rowstat &b) {
	if (b.s > 0.f) {
		if (a.s == 0.f) {
			a.m = b.m; a.s = b.s; a.t = b.t;
		} else {
			float m = fmaxf(a.m, b.m);
			float ea = expf(a.m - m), eb = expf(b.m - m);
			a.t = ea * (a.t + (a.m - m) * a.s) + eb * (b.t + (b.m - m) * b.s);
			a.s = ea * a.s + eb * b.s;
			a.m = m;
		}
	}
	// top-2 of the union of {a1, a2} and {b1, b2}
	if (better(b.v1, b.i1, a.v1, a.i1)) {
		if (better(a.v1, a.i1, b.v2, b.i2)) { a.v2 = a.v1; a.i2 = a.i1; }
		else { a.v2 = b.v2; a.i2 = b.i2; }
		a.v1 = b.v1; a.i1 = b.i1;
	} else if (better(b.v1, b.i1, a.v2, a.i2)) {
		a.v2 = b.v1; a.i2 = b.i1;
	}
}

__device__ rowstat stat_shfl(const rowstat &a, int o) {
	rowstat b;
	b.m = __shfl_xor_sync(0xffffffffu, a.m, o);
	b.s = __shfl_xor_sync(0xffffffffu, a.s, o);
	b.t = __shfl_xor_sync(0xffffffffu, a.t, o);
	b.v1 = __shfl_xor_sync(0xffffffffu, a.v1, o);
	b.v2 = __shfl_xor_sync(0xffffffffu, a.v2, o);
	b.i1 = __shfl_xor_sync(0xffffffffu, a.i1, o);
	b.i2 = __shfl_xor_sync(0xffffffffu, a.i2, o);
	return b;
}

__device__ __forceinline__ rowstat stat_empty() {
	rowstat a;
	a.m = -INFINITY; a.s = 0.f; a.t = 0.f; a.v1 = -INFINITY; a.v2 = -INFINITY;
	a.i1 = 0x7fffffff; a.i2 = 0x7fffffff;
	return a;
}

// Per row of logits ([n][vocab], plus logits2 when not NULL: the remainder's
// product; scaled by invTemp): the two most likely tokens, their
// probabilities, the entropy (nats) of the softmax and the log-probability
// of token score[i] (when score is not NULL and score[i] >= 0), so that the
// sampler reads 24 bytes per position instead of the row. Two launches, so
// that a few rows still fill the chip: row_stats_part summarises the slice
// [z*per, min(vocab, (z+1)*per)) of row i (per = ceil(vocab/splits)) into
// part[(z*n + i)*8 ..]: m, s, t, v1, v2, and i1, i2 as int bits. grid (n, splits), block a multiple of 32 up to 1024.
extern "C" __global__ void row_stats_part(float *part, const float *logits, const float *logits2, int n, int vocab,
	float invTemp, int splits) {
	__shared__ rowstat red[WARP];
	int i = blockIdx.x, z = blockIdx.y;
	if (i >= n || z >= splits) return;
	int per = (vocab + splits - 1) / splits;
	int j0 = z * per, j1 = min(vocab, j0 + per);
	const float *row = logits + (long)i * vocab;
	const float *row2 = logits2 ? logits2 + (long)i * vocab : 0;
	rowstat a = stat_empty();
	if (row2)
		for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x) stat_add(a, (row[j] + row2[j]) * invTemp, j);
	else
		for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x) stat_add(a, row[j] * invTemp, j);
	for (int o = WARP / 2; o > 0; o >>= 1) {
		rowstat b = stat_shfl(a, o);
		stat_merge(a, b);
	}
	int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
	if (lane == 0) red[w] = a;
	__syncthreads();
	if (w != 0) return;
	a = lane < nw ? red[lane] : stat_empty();
	for (int o = WARP / 2; o > 0; o >>= 1) {
		rowstat b = stat_shfl(a, o);
		stat_merge(a, b);
	}
	if (lane != 0) return;
	float *r = part + ((long)z * n + i) * 8;
	r[0] = a.m; r[1] = a.s; r[2] = a.t; r[3] = a.v1; r[4] = a.v2;
	r[5] = __int_as_float(a.i1); r[6] = __int_as_float(a.i2); r[7] = 0.f;
}

// Merges row_stats_part's slices of each row and writes what row_stats
// writes. grid (n), block 32.
extern "C" __global__ void row_stats_merge(int *top1, int *top2, float *p1, float *p2, float *entropy, float *scoreLogp,
	const float *part, const float *logits, const float *logits2, const int *score, int n, int vocab, float invTemp,
	int splits) {
	int i = blockIdx.x, lane = threadIdx.x;
	if (i >= n || lane >= WARP) return;
	rowstat a = stat_empty();
	for (int z = lane; z < splits; z += WARP) {
		const float *r = part + ((long)z * n + i) * 8;
		rowstat b;
		b.m = r[0]; b.s = r[1]; b.t = r[2]; b.v1 = r[3]; b.v2 = r[4];
		b.i1 = __float_as_int(r[5]); b.i2 = __float_as_int(r[6]);
		stat_merge(a, b);
	}
	for (int o = WARP / 2; o > 0; o >>= 1) {
		rowstat b = stat_shfl(a, o);
		stat_merge(a, b);
	}
	if (lane != 0) return;
	bool any = a.s > 0.f;
	top1[i] = a.i1;
	top2[i] = a.i2;
	p1[i] = any ? expf(a.v1 - a.m) / a.s : 0.f;
	p2[i] = any && a.v2 > -INFINITY ? expf(a.v2 - a.m) / a.s : 0.f;
	entropy[i] = any ? logf(a.s) - a.t / a.s : 0.f;
	int sc = score ? score[i] : -1;
	const float *row = logits + (long)i * vocab;
	const float *row2 = logits2 ? logits2 + (long)i * vocab : 0;
	float xs = sc >= 0 && sc < vocab ? (row2 ? row[sc] + row2[sc] : row[sc]) * invTemp : -INFINITY;
	scoreLogp[i] = any ? xs - a.m - logf(a.s) : -INFINITY;
}

// Gathers rows of a float32 matrix: out[i][:] = in[rows[i]][:]. grid (n).
extern "C" __global__ void gather_rows(float *out, const float *in, const int *rows, int n, int cols) {
	int i = blockIdx.x;
	if (i >= n) return;
	const float *src = in + (long)rows[i] * cols;
	for (int j = threadIdx.x; j < cols; j += blockDim.x) out[(long)i * cols + j] = src[j];
}

#define GT 64 // output tile (rows of x, rows of W)
#define GK 16 // depth of one shared-memory stage

// Fallback matrix product when cuBLAS cannot be loaded:
// y[m][nn] = alpha*x[m][k]·W[nn][k]ᵀ + beta*y, bf16 inputs, float32 accumulation.
// A plain 64x64-tile kernel (16x16 threads, 4x4 outputs each): correct and
// an order of magnitude slower than cuBLAS on tensor cores.
// grid (ceil(nn/64), ceil(m/64)), block (16, 16).
extern "C" __global__ void gemm_bf16(float *y, const bf16 *x, const bf16 *W, int m, int nn, int k, float alpha, float beta) {
	__shared__ float xs[GK][GT + 1];
	__shared__ float ws[GK][GT + 1];
	int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
	int row0 = blockIdx.y * GT, col0 = blockIdx.x * GT;
	float acc[4][4] = {};
	for (int k0 = 0; k0 < k; k0 += GK) {
		for (int e = tid; e < GT * GK; e += 256) {
			int r = e / GK, kk = e % GK;
			int gr = row0 + r, gc = col0 + r, gk = k0 + kk;
			xs[kk][r] = gr < m && gk < k ? bf2f(x[(long)gr * k + gk]) : 0.f;
			ws[kk][r] = gc < nn && gk < k ? bf2f(W[(long)gc * k + gk]) : 0.f;
		}
		__syncthreads();
#pragma unroll
		for (int kk = 0; kk < GK; kk++) {
			float a[4], b[4];
#pragma unroll
			for (int u = 0; u < 4; u++) { a[u] = xs[kk][ty + 16 * u]; b[u] = ws[kk][tx + 16 * u]; }
#pragma unroll
			for (int u = 0; u < 4; u++)
#pragma unroll
				for (int v = 0; v < 4; v++) acc[u][v] += a[u] * b[v];
		}
		__syncthreads();
	}
#pragma unroll
	for (int u = 0; u < 4; u++) {
		int r = row0 + ty + 16 * u;
		if (r >= m) continue;
#pragma unroll
		for (int v = 0; v < 4; v++) {
			int c = col0 + tx + 16 * v;
			if (c >= nn) continue;
			float *o = y + (long)r * nn + c;
			*o = beta != 0.f ? alpha * acc[u][v] + beta * *o : alpha * acc[u][v];
		}
	}
}
