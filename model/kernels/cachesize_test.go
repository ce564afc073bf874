package kernels

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCacheSizes: the L1 data and L2 sizes come from a sysfs cache
// directory (the instruction cache and L3 ignored, a bad entry skipped),
// and the budgets follow them, with the Zen 4 figures when unknown.
func TestCacheSizes(t *testing.T) {
	dir := t.TempDir()
	for i, c := range [][3]string{
		{"1", "Data", "48K"}, {"1", "Instruction", "32K"}, {"2", "Unified", "512K"}, {"3", "Unified", "32768K"}, {"2", "Unified", "lots"},
	} {
		d := filepath.Join(dir, "index"+string(rune('0'+i)))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]string{"level": c[0], "type": c[1], "size": c[2]} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	l1d, l2 := readCacheSizes(dir)
	if l1d != 48<<10 || l2 != 512<<10 {
		t.Errorf("read L1d %d, L2 %d; want 48 KiB, 512 KiB", l1d, l2)
	}
	if l1d, l2 := readCacheSizes(filepath.Join(dir, "missing")); l1d != 0 || l2 != 0 {
		t.Errorf("no directory: L1d %d, L2 %d; want 0, 0", l1d, l2)
	}
	for _, c := range []struct{ l1d, l2, b1, b2 int }{
		{32 << 10, 1 << 20, 24 << 10, 512 << 10},   // Zen 4
		{32 << 10, 512 << 10, 24 << 10, 256 << 10}, // Zen 2, Zen 3
		{48 << 10, 2 << 20, 36 << 10, 1 << 20},     // Sapphire Rapids
		{0, 0, 24 << 10, 512 << 10},                // unknown
		{1 << 10, 64 << 20, 16 << 10, 2 << 20},     // clamped
	} {
		if b1, b2 := budgets(c.l1d, c.l2); b1 != c.b1 || b2 != c.b2 {
			t.Errorf("budgets(%d, %d) = %d, %d; want %d, %d", c.l1d, c.l2, b1, b2, c.b1, c.b2)
		}
	}
}
