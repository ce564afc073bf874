//go:build unix

package model

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/diffill/diffill/model/internal/safefile"
)

// mapFile maps a whole regular file read-only. The returned release unmaps
// it; the bytes must not be touched after that, and are read only under
// Model.guardFaults (the file may shrink under the mapping).
func mapFile(name string) ([]byte, func() error, os.FileInfo, error) {
	f, st, err := safefile.Open(name)
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	size := st.Size()
	if size == 0 {
		return []byte{}, func() error { return nil }, st, nil
	}
	if size != int64(int(size)) {
		return nil, nil, nil, fmt.Errorf("%s: %d bytes is too large to map", name, size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mmap %s: %w", name, err)
	}
	return data, func() error { return unix.Munmap(data) }, st, nil
}

// fileID returns the device and inode of a file, which change when a file is
// replaced by a rename.
func fileID(st os.FileInfo) (dev, ino uint64) {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Dev), uint64(sys.Ino)
	}
	return 0, 0
}

// dropPages tells the kernel that the whole pages inside b, a part of a
// read-only file mapping, will not be needed soon; later reads fault them in
// from the file again.
func dropPages(b []byte) {
	if len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0]))
	end := start + uintptr(len(b))
	lo := (start + page - 1) &^ (page - 1)
	hi := end &^ (page - 1)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(b[lo-start:hi-start], unix.MADV_DONTNEED)
}
