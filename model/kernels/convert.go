package kernels

import "math"

// BF16ToF32 widens a bfloat16 (raw bits) to float32.
func BF16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }
