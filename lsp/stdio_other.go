//go:build !linux

package lsp

import (
	"io"
	"os"
)

// StdioConn returns the connection for LSP over the process's stdin and
// stdout.
func StdioConn() (io.ReadWriteCloser, error) {
	return stdio{in: os.Stdin, out: os.Stdout}, nil
}
