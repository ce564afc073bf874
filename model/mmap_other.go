//go:build !unix

package model

import "os"

// mapFile reads a whole file; systems without mmap pay one copy.
func mapFile(name string) ([]byte, func() error, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}

// dropPages is a no-op where files are read, not mapped.
func dropPages([]byte) {}
