//go:build amd64 && !purego

#include "textflag.h"

// Vector kernels of a transformer layer. The AVX-512 versions take any n
// (the tail runs under a lane mask); the AVX2 versions take n a multiple of
// 8 and leave the rest to Go.

// exp(x) constants (Cephes expf): x is clamped, split as n·ln2 + r with
// ln2 in two parts, and exp(r) is a degree-7 polynomial; 2^n is applied by
// scaling. Relative error ~1.5e-7 over the clamped range.
DATA bf16hi<>+0(SB)/4, $0xffff0000
GLOBL bf16hi<>(SB), RODATA|NOPTR, $4

DATA expc<>+0(SB)/4, $88.0           // hi clamp: 2^127 stays finite
DATA expc<>+4(SB)/4, $-87.0          // lo clamp: 2^-126 stays normal
DATA expc<>+8(SB)/4, $1.44269504088896341 // log2(e)
DATA expc<>+12(SB)/4, $0.693359375   // ln2, high part
DATA expc<>+16(SB)/4, $-2.12194440e-4 // ln2, low part
DATA expc<>+20(SB)/4, $1.9875691500e-4
DATA expc<>+24(SB)/4, $1.3981999507e-3
DATA expc<>+28(SB)/4, $8.3334519073e-3
DATA expc<>+32(SB)/4, $4.1665795894e-2
DATA expc<>+36(SB)/4, $1.6666665459e-1
DATA expc<>+40(SB)/4, $5.0000001201e-1
DATA expc<>+44(SB)/4, $1.0
GLOBL expc<>(SB), RODATA|NOPTR, $48

// The exp constants again, each as 8 lanes: AVX2 has no broadcast memory
// operands, and too few registers to keep all of them, so EXP256 folds
// 32-byte loads of these into its arithmetic instead of broadcasting.
DATA expv<>+0(SB)/4, $88.0
DATA expv<>+4(SB)/4, $88.0
DATA expv<>+8(SB)/4, $88.0
DATA expv<>+12(SB)/4, $88.0
DATA expv<>+16(SB)/4, $88.0
DATA expv<>+20(SB)/4, $88.0
DATA expv<>+24(SB)/4, $88.0
DATA expv<>+28(SB)/4, $88.0
DATA expv<>+32(SB)/4, $-87.0
DATA expv<>+36(SB)/4, $-87.0
DATA expv<>+40(SB)/4, $-87.0
DATA expv<>+44(SB)/4, $-87.0
DATA expv<>+48(SB)/4, $-87.0
DATA expv<>+52(SB)/4, $-87.0
DATA expv<>+56(SB)/4, $-87.0
DATA expv<>+60(SB)/4, $-87.0
DATA expv<>+64(SB)/4, $1.44269504088896341
DATA expv<>+68(SB)/4, $1.44269504088896341
DATA expv<>+72(SB)/4, $1.44269504088896341
DATA expv<>+76(SB)/4, $1.44269504088896341
DATA expv<>+80(SB)/4, $1.44269504088896341
DATA expv<>+84(SB)/4, $1.44269504088896341
DATA expv<>+88(SB)/4, $1.44269504088896341
DATA expv<>+92(SB)/4, $1.44269504088896341
DATA expv<>+96(SB)/4, $0.693359375
DATA expv<>+100(SB)/4, $0.693359375
DATA expv<>+104(SB)/4, $0.693359375
DATA expv<>+108(SB)/4, $0.693359375
DATA expv<>+112(SB)/4, $0.693359375
DATA expv<>+116(SB)/4, $0.693359375
DATA expv<>+120(SB)/4, $0.693359375
DATA expv<>+124(SB)/4, $0.693359375
DATA expv<>+128(SB)/4, $-2.12194440e-4
DATA expv<>+132(SB)/4, $-2.12194440e-4
DATA expv<>+136(SB)/4, $-2.12194440e-4
DATA expv<>+140(SB)/4, $-2.12194440e-4
DATA expv<>+144(SB)/4, $-2.12194440e-4
DATA expv<>+148(SB)/4, $-2.12194440e-4
DATA expv<>+152(SB)/4, $-2.12194440e-4
DATA expv<>+156(SB)/4, $-2.12194440e-4
DATA expv<>+160(SB)/4, $1.9875691500e-4
DATA expv<>+164(SB)/4, $1.9875691500e-4
DATA expv<>+168(SB)/4, $1.9875691500e-4
DATA expv<>+172(SB)/4, $1.9875691500e-4
DATA expv<>+176(SB)/4, $1.9875691500e-4
DATA expv<>+180(SB)/4, $1.9875691500e-4
DATA expv<>+184(SB)/4, $1.9875691500e-4
DATA expv<>+188(SB)/4, $1.9875691500e-4
DATA expv<>+192(SB)/4, $1.3981999507e-3
DATA expv<>+196(SB)/4, $1.3981999507e-3
DATA expv<>+200(SB)/4, $1.3981999507e-3
DATA expv<>+204(SB)/4, $1.3981999507e-3
DATA expv<>+208(SB)/4, $1.3981999507e-3
DATA expv<>+212(SB)/4, $1.3981999507e-3
DATA expv<>+216(SB)/4, $1.3981999507e-3
DATA expv<>+220(SB)/4, $1.3981999507e-3
DATA expv<>+224(SB)/4, $8.3334519073e-3
DATA expv<>+228(SB)/4, $8.3334519073e-3
DATA expv<>+232(SB)/4, $8.3334519073e-3
DATA expv<>+236(SB)/4, $8.3334519073e-3
DATA expv<>+240(SB)/4, $8.3334519073e-3
DATA expv<>+244(SB)/4, $8.3334519073e-3
DATA expv<>+248(SB)/4, $8.3334519073e-3
DATA expv<>+252(SB)/4, $8.3334519073e-3
DATA expv<>+256(SB)/4, $4.1665795894e-2
DATA expv<>+260(SB)/4, $4.1665795894e-2
DATA expv<>+264(SB)/4, $4.1665795894e-2
DATA expv<>+268(SB)/4, $4.1665795894e-2
DATA expv<>+272(SB)/4, $4.1665795894e-2
DATA expv<>+276(SB)/4, $4.1665795894e-2
DATA expv<>+280(SB)/4, $4.1665795894e-2
DATA expv<>+284(SB)/4, $4.1665795894e-2
DATA expv<>+288(SB)/4, $1.6666665459e-1
DATA expv<>+292(SB)/4, $1.6666665459e-1
DATA expv<>+296(SB)/4, $1.6666665459e-1
DATA expv<>+300(SB)/4, $1.6666665459e-1
DATA expv<>+304(SB)/4, $1.6666665459e-1
DATA expv<>+308(SB)/4, $1.6666665459e-1
DATA expv<>+312(SB)/4, $1.6666665459e-1
DATA expv<>+316(SB)/4, $1.6666665459e-1
DATA expv<>+320(SB)/4, $5.0000001201e-1
DATA expv<>+324(SB)/4, $5.0000001201e-1
DATA expv<>+328(SB)/4, $5.0000001201e-1
DATA expv<>+332(SB)/4, $5.0000001201e-1
DATA expv<>+336(SB)/4, $5.0000001201e-1
DATA expv<>+340(SB)/4, $5.0000001201e-1
DATA expv<>+344(SB)/4, $5.0000001201e-1
DATA expv<>+348(SB)/4, $5.0000001201e-1
DATA expv<>+352(SB)/4, $1.0
DATA expv<>+356(SB)/4, $1.0
DATA expv<>+360(SB)/4, $1.0
DATA expv<>+364(SB)/4, $1.0
DATA expv<>+368(SB)/4, $1.0
DATA expv<>+372(SB)/4, $1.0
DATA expv<>+376(SB)/4, $1.0
DATA expv<>+380(SB)/4, $1.0
GLOBL expv<>(SB), RODATA|NOPTR, $384

// ---------------------------------------------------------------- AVX-512

// LOADEXP512 broadcasts the exp constants into Z20..Z31.
#define LOADEXP512 \
	VBROADCASTSS expc<>+0(SB), Z20; \
	VBROADCASTSS expc<>+4(SB), Z21; \
	VBROADCASTSS expc<>+8(SB), Z22; \
	VBROADCASTSS expc<>+12(SB), Z23; \
	VBROADCASTSS expc<>+16(SB), Z24; \
	VBROADCASTSS expc<>+20(SB), Z25; \
	VBROADCASTSS expc<>+24(SB), Z26; \
	VBROADCASTSS expc<>+28(SB), Z27; \
	VBROADCASTSS expc<>+32(SB), Z28; \
	VBROADCASTSS expc<>+36(SB), Z29; \
	VBROADCASTSS expc<>+40(SB), Z30; \
	VBROADCASTSS expc<>+44(SB), Z31

// EXP512 sets x = exp(x), using t1..t3 and K2 as temporaries. Below the
// low clamp the result is 0 (flushed rather than left denormal, which
// would be slow); above the high clamp it is e^88.
#define EXP512(x, t1, t2, t3) \
	VCMPPS $13, Z21, x, K2; \
	VMINPS Z20, x, x; \
	VMAXPS Z21, x, x; \
	VMULPS Z22, x, t1; \
	VRNDSCALEPS $0, t1, t1; \
	VFNMADD231PS Z23, t1, x; \
	VFNMADD231PS Z24, t1, x; \
	VMOVAPS Z25, t2; \
	VFMADD213PS Z26, x, t2; \
	VFMADD213PS Z27, x, t2; \
	VFMADD213PS Z28, x, t2; \
	VFMADD213PS Z29, x, t2; \
	VFMADD213PS Z30, x, t2; \
	VMULPS x, x, t3; \
	VFMADD213PS x, t3, t2; \
	VADDPS Z31, t2, t2; \
	VSCALEFPS t1, t2, x; \
	VMOVAPS.Z x, K2, x

// TAILMASK sets K1 to the low CX lanes (CX < 16), clobbering AX.
#define TAILMASK \
	MOVL $1, AX; \
	SHLL CX, AX; \
	DECL AX; \
	KMOVW AX, K1

// HSUM512 sums the lanes of Z0 into X0, clobbering Z1.
#define HSUM512 \
	VEXTRACTF64X4 $1, Z0, Y1; \
	VADDPS Y1, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0x4e, X0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0xb1, X0, X1; \
	VADDPS X1, X0, X0

// func dotAVX512(a, b *float32, n int) float32
TEXT ·dotAVX512(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
dot512_64:
	CMPQ CX, $64
	JLT dot512_16
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	VFMADD231PS 128(DI), Z6, Z2
	VFMADD231PS 192(DI), Z7, Z3
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP dot512_64
dot512_16:
	CMPQ CX, $16
	JLT dot512_tail
	VMOVUPS (SI), Z4
	VFMADD231PS (DI), Z4, Z0
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP dot512_16
dot512_tail:
	TESTQ CX, CX
	JZ dot512_sum
	TAILMASK
	VMOVUPS.Z (SI), K1, Z4
	VMOVUPS.Z (DI), K1, Z5
	VFMADD231PS Z5, Z4, Z1
dot512_sum:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	HSUM512
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func axpyAVX512(alpha float32, x, y *float32, n int)
TEXT ·axpyAVX512(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Z0
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
axpy512_64:
	CMPQ CX, $64
	JLT axpy512_16
	VMOVUPS (DI), Z4
	VMOVUPS 64(DI), Z5
	VMOVUPS 128(DI), Z6
	VMOVUPS 192(DI), Z7
	VFMADD231PS (SI), Z0, Z4
	VFMADD231PS 64(SI), Z0, Z5
	VFMADD231PS 128(SI), Z0, Z6
	VFMADD231PS 192(SI), Z0, Z7
	VMOVUPS Z4, (DI)
	VMOVUPS Z5, 64(DI)
	VMOVUPS Z6, 128(DI)
	VMOVUPS Z7, 192(DI)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP axpy512_64
axpy512_16:
	CMPQ CX, $16
	JLT axpy512_tail
	VMOVUPS (DI), Z4
	VFMADD231PS (SI), Z0, Z4
	VMOVUPS Z4, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP axpy512_16
axpy512_tail:
	TESTQ CX, CX
	JZ axpy512_done
	TAILMASK
	VMOVUPS.Z (DI), K1, Z4
	VMOVUPS.Z (SI), K1, Z5
	VFMADD231PS Z5, Z0, Z4
	VMOVUPS Z4, K1, (DI)
axpy512_done:
	VZEROUPPER
	RET

// func mulScaleAVX512(dst, x, w *float32, s float32, n int)
// dst[i] = x[i]·w[i]·s; w == nil means all ones.
TEXT ·mulScaleAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	VBROADCASTSS s+24(FP), Z0
	MOVQ n+32(FP), CX
	TESTQ DX, DX
	JZ scale512_16
mul512_16:
	CMPQ CX, $16
	JLT mul512_tail
	VMULPS (SI), Z0, Z4
	VMULPS (DX), Z4, Z4
	VMOVUPS Z4, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	SUBQ $16, CX
	JMP mul512_16
mul512_tail:
	TESTQ CX, CX
	JZ mul512_done
	TAILMASK
	VMOVUPS.Z (SI), K1, Z4
	VMOVUPS.Z (DX), K1, Z5
	VMULPS Z0, Z4, Z4
	VMULPS Z5, Z4, Z4
	VMOVUPS Z4, K1, (DI)
	JMP mul512_done
scale512_16:
	CMPQ CX, $16
	JLT scale512_tail
	VMULPS (SI), Z0, Z4
	VMOVUPS Z4, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP scale512_16
scale512_tail:
	TESTQ CX, CX
	JZ mul512_done
	TAILMASK
	VMOVUPS.Z (SI), K1, Z4
	VMULPS Z0, Z4, Z4
	VMOVUPS Z4, K1, (DI)
mul512_done:
	VZEROUPPER
	RET

// func maxAVX512(x *float32, n int) float32
// n >= 1.
TEXT ·maxAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS (SI), Z0
	VMOVAPS Z0, Z1
max512_32:
	CMPQ CX, $32
	JLT max512_16
	VMAXPS (SI), Z0, Z0
	VMAXPS 64(SI), Z1, Z1
	ADDQ $128, SI
	SUBQ $32, CX
	JMP max512_32
max512_16:
	CMPQ CX, $16
	JLT max512_tail
	VMAXPS (SI), Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JMP max512_16
max512_tail:
	TESTQ CX, CX
	JZ max512_reduce
	TAILMASK
	VMOVAPS Z0, Z2
	VMOVUPS (SI), K1, Z2 // merge: masked-off lanes keep a value already seen
	VMAXPS Z2, Z1, Z1
max512_reduce:
	VMAXPS Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func expSumAVX512(x *float32, n int, scale, sub float32) float32
// x[i] = exp(x[i]·scale - sub); returns the sum of the new x.
TEXT ·expSumAVX512(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS scale+16(FP), Z2
	VBROADCASTSS sub+20(FP), Z3
	LOADEXP512
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
exps512_32:
	CMPQ CX, $32
	JLT exps512_16
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z8
	VFMSUB213PS Z3, Z2, Z4
	VFMSUB213PS Z3, Z2, Z8
	EXP512(Z4, Z5, Z6, Z7)
	EXP512(Z8, Z9, Z10, Z11)
	VMOVUPS Z4, (SI)
	VMOVUPS Z8, 64(SI)
	VADDPS Z4, Z0, Z0
	VADDPS Z8, Z1, Z1
	ADDQ $128, SI
	SUBQ $32, CX
	JMP exps512_32
exps512_16:
	CMPQ CX, $16
	JLT exps512_tail
	VMOVUPS (SI), Z4
	VFMSUB213PS Z3, Z2, Z4
	EXP512(Z4, Z5, Z6, Z7)
	VMOVUPS Z4, (SI)
	VADDPS Z4, Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JMP exps512_16
exps512_tail:
	TESTQ CX, CX
	JZ exps512_sum
	TAILMASK
	VMOVUPS.Z (SI), K1, Z4
	VFMSUB213PS Z3, Z2, Z4
	EXP512(Z4, Z5, Z6, Z7)
	VMOVUPS Z4, K1, (SI)
	VADDPS Z4, Z1, K1, Z1
exps512_sum:
	VADDPS Z1, Z0, Z0
	HSUM512
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func swigluAVX512(out, gate, up *float32, n int)
// out[i] = g[i]·sigmoid(g[i])·u[i] = g·u / (1 + exp(-g)).
TEXT ·swigluAVX512(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	LOADEXP512
swiglu512_16:
	CMPQ CX, $16
	JLT swiglu512_tail
	VMOVUPS (SI), Z0
	VPXORD Z4, Z4, Z4
	VSUBPS Z0, Z4, Z4
	EXP512(Z4, Z5, Z6, Z7)
	VADDPS Z31, Z4, Z4
	VMULPS (DX), Z0, Z0
	VDIVPS Z4, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	SUBQ $16, CX
	JMP swiglu512_16
swiglu512_tail:
	TESTQ CX, CX
	JZ swiglu512_done
	TAILMASK
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z (DX), K1, Z1
	VPXORD Z4, Z4, Z4
	VSUBPS Z0, Z4, Z4
	EXP512(Z4, Z5, Z6, Z7)
	VADDPS Z31, Z4, Z4
	VMULPS Z1, Z0, Z0
	VDIVPS Z4, Z0, Z0
	VMOVUPS Z0, K1, (DI)
swiglu512_done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------- AVX2

// EXP256 sets x = exp(x) like EXP512, its constants read from expv as
// memory operands (one fused load each, no broadcast instructions), using
// t1..t4 as temporaries.
#define EXP256(x, t1, t2, t3, t4) \
	VCMPPS $13, expv<>+32(SB), x, t4; \
	VMAXPS expv<>+32(SB), x, x; \
	VMINPS expv<>+0(SB), x, x; \
	VMULPS expv<>+64(SB), x, t1; \
	VROUNDPS $0, t1, t1; \
	VFNMADD231PS expv<>+96(SB), t1, x; \
	VFNMADD231PS expv<>+128(SB), t1, x; \
	VMOVUPS expv<>+160(SB), t2; \
	VFMADD213PS expv<>+192(SB), x, t2; \
	VFMADD213PS expv<>+224(SB), x, t2; \
	VFMADD213PS expv<>+256(SB), x, t2; \
	VFMADD213PS expv<>+288(SB), x, t2; \
	VFMADD213PS expv<>+320(SB), x, t2; \
	VMULPS x, x, t3; \
	VFMADD213PS x, t3, t2; \
	VADDPS expv<>+352(SB), t2, t2; \
	VCVTPS2DQ t1, t1; \
	VPSLLD $23, t1, t1; \
	VPADDD expv<>+352(SB), t1, t1; \
	VMULPS t1, t2, x; \
	VANDPS t4, x, x

// HSUM256 sums the lanes of Y0 into X0, clobbering Y1.
#define HSUM256 \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0x4e, X0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0xb1, X0, X1; \
	VADDPS X1, X0, X0

// func dotAVX2(a, b *float32, n int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
dot256_32:
	CMPQ CX, $32
	JLT dot256_8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP dot256_32
dot256_8:
	CMPQ CX, $8
	JLT dot256_sum
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP dot256_8
dot256_sum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM256
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func axpyAVX2(alpha float32, x, y *float32, n int)
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
axpy256_32:
	CMPQ CX, $32
	JLT axpy256_8
	VMOVUPS (DI), Y4
	VMOVUPS 32(DI), Y5
	VMOVUPS 64(DI), Y6
	VMOVUPS 96(DI), Y7
	VFMADD231PS (SI), Y0, Y4
	VFMADD231PS 32(SI), Y0, Y5
	VFMADD231PS 64(SI), Y0, Y6
	VFMADD231PS 96(SI), Y0, Y7
	VMOVUPS Y4, (DI)
	VMOVUPS Y5, 32(DI)
	VMOVUPS Y6, 64(DI)
	VMOVUPS Y7, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP axpy256_32
axpy256_8:
	CMPQ CX, $8
	JLT axpy256_done
	VMOVUPS (DI), Y4
	VFMADD231PS (SI), Y0, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP axpy256_8
axpy256_done:
	VZEROUPPER
	RET

// func mulScaleAVX2(dst, x, w *float32, s float32, n int)
TEXT ·mulScaleAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	VBROADCASTSS s+24(FP), Y0
	MOVQ n+32(FP), CX
	TESTQ DX, DX
	JZ scale256_8
mul256_8:
	CMPQ CX, $8
	JLT mul256_done
	VMULPS (SI), Y0, Y4
	VMULPS (DX), Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP mul256_8
scale256_8:
	CMPQ CX, $8
	JLT mul256_done
	VMULPS (SI), Y0, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP scale256_8
mul256_done:
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
// n >= 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y0
max256_8:
	CMPQ CX, $8
	JLT max256_reduce
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP max256_8
max256_reduce:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func expSumAVX2(x *float32, n int, scale, sub float32) float32
TEXT ·expSumAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS scale+16(FP), Y2
	VBROADCASTSS sub+20(FP), Y3
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
exps256_16:
	// Two vectors an iteration: two independent exp chains in flight.
	CMPQ CX, $16
	JLT exps256_8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y9
	VFMSUB213PS Y3, Y2, Y4
	VFMSUB213PS Y3, Y2, Y9
	EXP256(Y4, Y5, Y6, Y7, Y8)
	EXP256(Y9, Y10, Y11, Y12, Y13)
	VMOVUPS Y4, (SI)
	VMOVUPS Y9, 32(SI)
	VADDPS Y4, Y0, Y0
	VADDPS Y9, Y1, Y1
	ADDQ $64, SI
	SUBQ $16, CX
	JMP exps256_16
exps256_8:
	CMPQ CX, $8
	JLT exps256_sum
	VMOVUPS (SI), Y4
	VFMSUB213PS Y3, Y2, Y4
	EXP256(Y4, Y5, Y6, Y7, Y8)
	VMOVUPS Y4, (SI)
	VADDPS Y4, Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP exps256_8
exps256_sum:
	VADDPS Y1, Y0, Y0
	HSUM256
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func swigluAVX2(out, gate, up *float32, n int)
TEXT ·swigluAVX2(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
swiglu256_8:
	CMPQ CX, $8
	JLT swiglu256_done
	VMOVUPS (SI), Y0
	VXORPS Y4, Y4, Y4
	VSUBPS Y0, Y4, Y4
	EXP256(Y4, Y5, Y6, Y7, Y8)
	VBROADCASTSS expc<>+44(SB), Y5
	VADDPS Y5, Y4, Y4
	VMULPS (DX), Y0, Y0
	VDIVPS Y4, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP swiglu256_8
swiglu256_done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------- widening

// func widenBF16AVX512(dst *float32, src *uint16, rows int)
// Widens rows of a 32-wide bf16 panel, stored in pairs (lane j holds
// columns j and j+16), to plain float32 rows.
TEXT ·widenBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVL $0xaaaaaaaa, AX
	KMOVD AX, K1
	TESTQ CX, CX
	JZ wbf512_done
wbf512_loop:
	VPSLLD $16, (SI), Z0
	VMOVDQU16.Z (SI), K1, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ $64, SI
	ADDQ $128, DI
	DECQ CX
	JNZ wbf512_loop
wbf512_done:
	VZEROUPPER
	RET

// func widenF16AVX512(dst *float32, src *uint16, rows int)
// Widens rows of a 32-wide f16 panel to float32.
TEXT ·widenF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	TESTQ CX, CX
	JZ wf16512_done
wf16512_loop:
	VCVTPH2PS (SI), Z0
	VCVTPH2PS 32(SI), Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ $64, SI
	ADDQ $128, DI
	DECQ CX
	JNZ wf16512_loop
wf16512_done:
	VZEROUPPER
	RET

// func widenBF16AVX2(dst *float32, src *uint16, rows int)
// 16-wide panels: lane j holds columns j and j+8.
TEXT ·widenBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	VPBROADCASTD bf16hi<>(SB), Y2
	TESTQ CX, CX
	JZ wbf256_done
wbf256_loop:
	VMOVDQU (SI), Y1
	VPSLLD $16, Y1, Y0
	VPAND Y2, Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNZ wbf256_loop
wbf256_done:
	VZEROUPPER
	RET

// func widenF16AVX2(dst *float32, src *uint16, rows int)
TEXT ·widenF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	TESTQ CX, CX
	JZ wf16256_done
wf16256_loop:
	VCVTPH2PS (SI), Y0
	VCVTPH2PS 16(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNZ wf16256_loop
wf16256_done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------- RoPE

// func ropeAVX2(x, cos, sin *float32, half, heads int)
// Rotates heads consecutive heads of 2·half floats (half a multiple of 8)
// in rotate_half form: x1' = x1·cos - x2·sin, x2' = x2·cos + x1·sin, each
// product rounded before the sum, as the Go loop rounds them at
// GOAMD64=v1 (no FMA). AVX-512 machines run it too: at head sizes of 64
// to 128 the wider registers would save little.
TEXT ·ropeAVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), DI
	MOVQ heads+32(FP), BX
	MOVQ half+24(FP), R8
	SHLQ $2, R8 // half in bytes: x2 = x1 + R8
rope256_head:
	TESTQ BX, BX
	JZ rope256_done
	MOVQ cos+8(FP), SI
	MOVQ sin+16(FP), DX
	MOVQ half+24(FP), CX
rope256_8:
	VMOVUPS (DI), Y0
	VMOVUPS (DI)(R8*1), Y1
	VMOVUPS (SI), Y2
	VMOVUPS (DX), Y3
	VMULPS Y2, Y0, Y4
	VMULPS Y3, Y1, Y5
	VSUBPS Y5, Y4, Y4
	VMULPS Y2, Y1, Y6
	VMULPS Y3, Y0, Y7
	VADDPS Y7, Y6, Y6
	VMOVUPS Y4, (DI)
	VMOVUPS Y6, (DI)(R8*1)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	SUBQ $8, CX
	JNZ rope256_8
	ADDQ R8, DI // past x2 to the next head
	DECQ BX
	JMP rope256_head
rope256_done:
	VZEROUPPER
	RET
