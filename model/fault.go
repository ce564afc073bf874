package model

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"
)

// ErrWeightsChanged is wrapped by the errors of a model whose weight files
// changed on disk after it was loaded: copied over in place, truncated or
// replaced. The model must be loaded again.
//
// Weights are memory-mapped, and a mapped file that shrinks under the process
// turns a read of its lost pages into SIGBUS, which would kill the server.
// Every read of mapped bytes therefore runs on a goroutine that has asked
// the runtime to turn such a fault into a panic (debug.SetPanicOnFault), and
// the panic into this error: at load (parsing and packing, on the loading
// goroutine) and in the forward pass (the embedding rows, gathered on the
// calling goroutine; everything else reads packed copies). Model.Changed
// tells a caller before the next request that the files are not the ones
// loaded, so that a file copied over with the same size (no fault, but other
// numbers) is caught too.
var ErrWeightsChanged = errors.New("the model's weight files changed on disk")

// guardFaults runs fn, turning a memory fault while reading mapped weights
// into an error wrapping ErrWeightsChanged. It must be called on the
// goroutine that reads the mapped bytes.
func (m *Model) guardFaults(fn func() error) (err error) {
	if !m.mapped {
		return fn()
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if f, ok := r.(interface{ Addr() uintptr }); ok && f != nil {
				err = fmt.Errorf("%w: reading %v faulted (the file was truncated or replaced in place while loaded; copy new weights beside it and rename them over it instead): load the model again", ErrWeightsChanged, m.weightFiles)
				return
			}
			panic(r)
		}
	}()
	return fn()
}

// GuardFaults runs fn, which reads the bytes of Tensors (a backend uploading
// them), on the calling goroutine; a fault there because a weight file
// shrank becomes an error wrapping ErrWeightsChanged instead of killing the
// process. fn must not hand the bytes to other goroutines.
func (m *Model) GuardFaults(fn func() error) error { return m.guardFaults(fn) }

// fileStamp identifies the version of a file that was loaded.
type fileStamp struct {
	path  string
	size  int64
	mtime time.Time
	dev   uint64
	ino   uint64
}

func stampOf(path string, st os.FileInfo) fileStamp {
	s := fileStamp{path: path, size: st.Size(), mtime: st.ModTime()}
	s.dev, s.ino = fileID(st)
	return s
}

// Changed reports, as an error wrapping ErrWeightsChanged, whether any weight
// file of the model is no longer the file that was loaded (a new size, time
// or inode, or gone). It costs one stat per file; a model from memory
// (LoadFiles) never changes.
func (m *Model) Changed() error {
	for _, s := range m.stamps {
		st, err := os.Stat(s.path)
		if err != nil {
			return fmt.Errorf("%w: %s: %v: load the model again", ErrWeightsChanged, s.path, err)
		}
		now := stampOf(s.path, st)
		if now.size != s.size || !now.mtime.Equal(s.mtime) || now.dev != s.dev || now.ino != s.ino {
			return fmt.Errorf("%w: %s is not the file loaded (%d bytes, modified %s; now %d bytes, modified %s): load the model again",
				ErrWeightsChanged, s.path, s.size, s.mtime.Format(time.RFC3339), now.size, now.mtime.Format(time.RFC3339))
		}
	}
	return nil
}
