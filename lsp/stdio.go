package lsp

import (
	"errors"
	"io"
)

// stdio joins a reader and a writer into one connection.
type stdio struct {
	in  io.ReadCloser
	out io.WriteCloser
}

func (s stdio) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s stdio) Write(p []byte) (int, error) { return s.out.Write(p) }
func (s stdio) Close() error                { return errors.Join(s.in.Close(), s.out.Close()) }

// NewConn joins in and out (a process's stdout and stdin, say) into one
// connection for Serve.
func NewConn(in io.ReadCloser, out io.WriteCloser) io.ReadWriteCloser {
	return stdio{in: in, out: out}
}
