package lsp

import (
	"context"
	"os"
	"runtime"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// watchParent ends the session if the editor process (initialize's
// processId) goes away without closing the connection, as the spec asks:
// a server left behind by a crashed editor would hold its model in memory
// for nothing.
func (s *Server) watchParent(pid int64) {
	if pid <= 0 || runtime.GOOS == "windows" || int64(int(pid)) != pid {
		return
	}
	s.goAsync(func(ctx context.Context) {
		t := time.NewTicker(s.parentPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p, err := os.FindProcess(int(pid))
			if err == nil {
				err = p.Signal(syscall.Signal(0))
			}
			if err != nil && err != syscall.EPERM {
				s.log.Warn("editor process is gone; ending the session", zap.Int64("pid", pid), zap.Error(err))
				select {
				case s.exitErr <- ErrConnectionClosed:
				default:
				}
				return
			}
		}
	})
}
