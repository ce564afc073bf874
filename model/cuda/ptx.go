package cuda

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
)

//go:generate nvcc -ptx -arch=compute_80 -o kernels.ptx kernels.cu

// kernelsPTX is the project's kernels compiled for the virtual architecture
// compute_80 (Ampere and newer); the driver compiles it for the card it finds.
//
//go:embed kernels.ptx
var kernelsPTX string

// argKind is the type of one kernel parameter as the PTX declares it.
type argKind byte

const (
	argPtr argKind = 'p' // .u64: a device pointer (or a 64-bit integer)
	argI32 argKind = 'i' // .u32 / .s32
	argF32 argKind = 'f' // .f32
)

var (
	ptxEntry = regexp.MustCompile(`\.entry\s+(\w+)\s*\(([^)]*)\)`)
	ptxParam = regexp.MustCompile(`\.param\s+\.(u64|u32|s32|f32|b64|b32)\s+\w+`)
)

// parseSignatures reads every kernel's parameter list from PTX text, so that
// each launch can be checked against the code it calls.
func parseSignatures(ptx string) (map[string][]argKind, error) {
	sigs := map[string][]argKind{}
	for _, m := range ptxEntry.FindAllStringSubmatch(ptx, -1) {
		var kinds []argKind
		for _, raw := range strings.Split(m[2], ",") {
			raw = strings.TrimSpace(raw)
			if raw == "" {
				continue
			}
			p := ptxParam.FindStringSubmatch(raw)
			if p == nil {
				return nil, fmt.Errorf("kernel %s: unsupported parameter %q", m[1], raw)
			}
			switch p[1] {
			case "u64", "b64":
				kinds = append(kinds, argPtr)
			case "u32", "s32", "b32":
				kinds = append(kinds, argI32)
			case "f32":
				kinds = append(kinds, argF32)
			}
		}
		sigs[m[1]] = kinds
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("no .entry in PTX")
	}
	return sigs, nil
}
