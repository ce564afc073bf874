//go:build unix

package main

import "syscall"

// withUmask runs f with the process umask set to mask. (The umask is
// process-wide; serve sets it once, at start, before any session runs.)
func withUmask(mask int, f func() error) error {
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	return f()
}
