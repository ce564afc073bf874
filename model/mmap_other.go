//go:build !unix

package model

import (
	"io"
	"os"

	"github.com/diffill/diffill/model/internal/safefile"
)

// mapFile reads a whole regular file; systems without mmap pay one copy.
func mapFile(name string) ([]byte, func() error, os.FileInfo, error) {
	f, st, err := safefile.Open(name)
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, nil, err
	}
	return data, func() error { return nil }, st, nil
}

// fileID is unknown here; size and time identify a file's version.
func fileID(os.FileInfo) (dev, ino uint64) { return 0, 0 }

// dropPages is a no-op where files are read, not mapped.
func dropPages([]byte) {}
