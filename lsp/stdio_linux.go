package lsp

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// StdioConn returns the connection for LSP over the process's stdin and
// stdout. Stdout carries the protocol and nothing else: the protocol gets
// its own duplicate of file descriptor 1, and descriptor 1 itself is
// pointed at stderr, so that a stray print anywhere in the process (a
// library's fmt.Println) lands in the log instead of corrupting the stream.
func StdioConn() (io.ReadWriteCloser, error) {
	fd, err := unix.Dup(1)
	if err != nil {
		return nil, fmt.Errorf("duplicating stdout: %w", err)
	}
	if err := unix.Dup3(2, 1, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pointing stdout at stderr: %w", err)
	}
	unix.CloseOnExec(fd)
	return stdio{in: os.Stdin, out: os.NewFile(uintptr(fd), "lsp-stdout")}, nil
}
