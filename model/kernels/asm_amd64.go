//go:build amd64 && !purego

package kernels

//go:generate go run ./internal/asmgen -out .

const haveAsm = true
