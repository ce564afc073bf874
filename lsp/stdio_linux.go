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
	return stdio{in: pollableStdin(), out: os.NewFile(uintptr(fd), "lsp-stdout")}, nil
}

// pollableStdin returns stdin such that closing it ends a pending Read.
// An editor's pipe is usually in blocking mode, and a blocking read(2) on
// it outlives Close: the session could not end until the editor closed its
// end. In non-blocking mode Go's poller reads it, and Close interrupts
// that. Only pipes and sockets are switched: a terminal's mode is shared
// with the shell.
func pollableStdin() *os.File {
	var st unix.Stat_t
	if err := unix.Fstat(0, &st); err != nil {
		return os.Stdin
	}
	if typ := st.Mode & unix.S_IFMT; typ != unix.S_IFIFO && typ != unix.S_IFSOCK {
		return os.Stdin
	}
	if err := unix.SetNonblock(0, true); err != nil {
		return os.Stdin
	}
	return os.NewFile(0, "stdin")
}
