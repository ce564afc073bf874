// Package safefile opens the files of a checkpoint directory defensively: a
// checkpoint is user input, and a name in it may be a link to a device, a
// FIFO or a file far larger than any real one of its kind.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Open opens name for reading, following links, and returns it only if it is
// a regular file. The open does not block: a FIFO opened for reading with
// O_NONBLOCK returns at once (and is then refused), where a plain open would
// wait for a writer for ever.
func Open(name string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file (%s): a checkpoint file must be a plain file or a link to one", name, kind(st.Mode()))
	}
	return f, st, nil
}

// ErrTooLarge is wrapped by ReadFile's error for a file over its limit.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads the regular file name, refusing one larger than limit bytes
// with an error that states the limit. A file that grows while it is read is
// cut at the limit and refused too, so the memory used is bounded whatever
// the file does.
func ReadFile(name string, limit int64) ([]byte, error) {
	f, st, err := Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes is over the %s limit for this file: %w", name, st.Size(), Size(limit), ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: grew past the %s limit for this file while being read: %w", name, Size(limit), ErrTooLarge)
	}
	return data, nil
}

// Size formats a byte count for messages.
func Size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func kind(m os.FileMode) string {
	switch {
	case m&os.ModeDir != 0:
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}

// Limits bounds the side files of a checkpoint directory by name. Each is
// several times the largest published file of its kind (Qwen2's and Llama
// 3's tokenizer.json are 7-9 MB; sharded indexes of 70B models are about
// 100 KB), so only a file that is not what its name says is refused.
var limits = map[string]int64{
	"config.json":                  1 << 20,
	"generation_config.json":       1 << 20,
	"tokenizer_config.json":        16 << 20,
	"special_tokens_map.json":      1 << 20,
	"model.safetensors.index.json": 16 << 20,
	"tokenizer.json":               64 << 20,
	"vocab.json":                   32 << 20,
	"merges.txt":                   32 << 20,
}

// defaultLimit bounds any other side file.
const defaultLimit = 16 << 20

// Limit returns the size limit ReadDirFile applies to the named side file.
func Limit(name string) int64 {
	if l, ok := limits[name]; ok {
		return l
	}
	return defaultLimit
}

// ReadDirFile reads the side file name of the checkpoint directory dir
// within its limit (see Limit).
func ReadDirFile(dir, name string) ([]byte, error) {
	return ReadFile(filepath.Join(dir, name), Limit(name))
}
