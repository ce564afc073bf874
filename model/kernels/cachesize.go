package kernels

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Cache blocking budgets, from the sizes of this CPU's caches (see gemm).
// A tile's rows of A should stay in L1 while the tile walks along a group
// of panels: l1Budget, 3/4 of the L1 data cache, leaves the rest to the
// panel row being streamed. The group should stay in L2 while row blocks
// walk down M, with room for the rows of A and C: l2Budget is half the L2.
// Measured on a Zen 4 core (1 MiB L2): 512 KiB groups beat 1 MiB ones, and
// 128 KiB ones are as fast on the built-in model's products; a Zen 2 or 3
// core has 512 KiB of L2, where a 512 KiB group would not stay. Sizes the
// OS does not report keep the Zen 4 figures.
var l1Budget, l2Budget = budgets(readCacheSizes("/sys/devices/system/cpu/cpu0/cache"))

// Sizes assumed when the OS does not say.
const (
	defaultL1D = 32 << 10
	defaultL2  = 1 << 20
)

// budgets returns the blocking budgets for an L1 data cache and an L2 of
// the given sizes in bytes (0: unknown).
func budgets(l1d, l2 int) (l1, l2b int) {
	if l1d <= 0 {
		l1d = defaultL1D
	}
	if l2 <= 0 {
		l2 = defaultL2
	}
	return min(max(l1d*3/4, 16<<10), 48<<10), min(max(l2/2, 64<<10), 2<<20)
}

// readCacheSizes reads the L1 data and L2 sizes of one core from a Linux
// sysfs cache directory (index*/level, type, size); 0 where it cannot.
func readCacheSizes(dir string) (l1d, l2 int) {
	idx, _ := filepath.Glob(filepath.Join(dir, "index*"))
	for _, d := range idx {
		read := func(name string) string {
			b, err := os.ReadFile(filepath.Join(d, name))
			if err != nil {
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		size, err := parseCacheSize(read("size"))
		if err != nil {
			continue
		}
		switch level, typ := read("level"), read("type"); {
		case level == "1" && typ == "Data":
			l1d = size
		case level == "2" && (typ == "Unified" || typ == "Data"):
			l2 = size
		}
	}
	return l1d, l2
}

// parseCacheSize parses sysfs's "32K", "1024K", "2M" or a plain byte count.
func parseCacheSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("cache size %q", s)
	}
	return n * mult, nil
}

// CacheBudgets describes the blocking: the L1 and L2 budgets in KiB.
func CacheBudgets() string {
	return fmt.Sprintf("blocking for %d KiB of L1, %d KiB of L2", l1Budget>>10, l2Budget>>10)
}
