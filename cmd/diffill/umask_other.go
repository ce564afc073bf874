//go:build !unix

package main

// withUmask: no umask here; the socket's permissions are set after.
func withUmask(_ int, f func() error) error { return f() }
