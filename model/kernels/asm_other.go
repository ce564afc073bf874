//go:build !amd64 || purego

package kernels

const haveAsm = false

var asmKernels [isaAVX512 + 1][numDTypes][]microKernel
