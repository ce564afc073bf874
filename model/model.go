package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/diffill/diffill/model/internal/safefile"
	"github.com/diffill/diffill/model/kernels"
	"github.com/diffill/diffill/model/tokenizer"
)

// layout names the tensors of one family's checkpoint.
type layout struct {
	embed, norm, head string // head is "" when the embeddings are tied
	layer             func(i int) layerNames
}

// layerNames names one transformer block's tensors; bias names are "" when the
// family has no q/k/v bias.
type layerNames struct {
	attnNorm, q, k, v, o, qBias, kBias, vBias, mlpNorm, gate, up, down string
}

// layer is one transformer block, the same for every family. The
// projections that read the same input are fused into one matrix (q, k and
// v; gate and up), so that each is one pass over the activations and one
// round of the kernels' workers.
type layer struct {
	attnNorm []float32
	qkv      *kernels.Linear // rows: q [heads·headDim], k and v [kvHeads·headDim] each
	qkvBias  []float32       // nil without q/k/v bias
	o        *kernels.Linear
	mlpNorm  []float32
	gateUp   *kernels.Linear // rows: gate, then up [intermediate] each
	down     *kernels.Linear // down(silu(gate(x)) * up(x))
}

// Model is a loaded checkpoint, ready to run. A Model is immutable after
// loading and safe for concurrent use; a Cache is not.
type Model struct {
	Config Config
	// Tokenizer is nil when the checkpoint ships no tokenizer files.
	Tokenizer *tokenizer.Tokenizer

	// Params is the number of weights the forward pass uses.
	Params int64
	// DType is the storage type of the weights ("F32", "BF16", "F16", or
	// "mixed").
	DType string
	// FileBytes is the total size of the safetensors files.
	FileBytes int64

	embed  embedding
	layers []layer
	norm   []float32
	head   *kernels.Linear

	scratch sync.Pool     // *scratch: working memory of CPU passes (forward.go)
	serial  *kernels.Pool // no workers: for kernels that run inside a parallel task

	release     []func() error
	weightFiles []string    // the safetensors files read, for error messages
	mapped      bool        // the weight files are memory-mapped
	stamps      []fileStamp // the mapped files as loaded (Changed)

	// Set by SetBackend (backend.go); tensors and lay keep the checkpoint's
	// raw weights reachable for a backend to upload.
	backend Backend
	tensors map[string]*tensorData
	lay     layout
}

// Close unmaps the checkpoint files. The Model must not be used afterwards.
func (m *Model) Close() error {
	var errs []error
	for _, r := range m.release {
		errs = append(errs, r())
	}
	m.release = nil
	return errors.Join(errs...)
}

// embedding is the token embedding table, kept in its file's dtype and widened
// one row at a time.
type embedding struct {
	dtype string
	data  []byte
	dim   int
}

func (e *embedding) row(dst []float32, id int32) {
	off := int(id) * e.dim
	switch e.dtype {
	case "F32":
		b := e.data[off*4 : (off+e.dim)*4]
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "BF16":
		b := e.data[off*2 : (off+e.dim)*2]
		for i := range dst {
			dst[i] = kernels.BF16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case "F16":
		b := e.data[off*2 : (off+e.dim)*2]
		for i := range dst {
			dst[i] = kernels.F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
}

// Load reads a checkpoint directory in the Hugging Face layout: config.json,
// model.safetensors or model.safetensors.index.json with its shards, and the
// optional generation_config.json, tokenizer_config.json and tokenizer files.
// The weights are memory-mapped.
func Load(dir string) (*Model, error) {
	if err := CheckDir(dir); err != nil {
		return nil, err
	}
	read := func(name string) ([]byte, error) { return safefile.ReadDirFile(dir, name) }
	var stamps []fileStamp
	m, err := load(read, func(name string) ([]byte, func() error, error) {
		path := filepath.Join(dir, name)
		data, release, st, err := mapFile(path)
		if err == nil {
			stamps = append(stamps, stampOf(path, st))
		}
		return data, release, err
	}, true)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	m.stamps = stamps
	return m, nil
}

// DirContents says what a checkpoint directory holds, for messages about
// one that does not.
const DirContents = "a model directory holds config.json, model.safetensors (or model.safetensors.index.json and its shards) " +
	"and tokenizer.json (or vocab.json and merges.txt), as published on Hugging Face"

// CheckDir tells whether dir can be a checkpoint directory at all: it
// exists, is a directory, and has a config.json. The errors say what a
// model directory holds.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("model directory %s does not exist (%s)", dir, DirContents)
	case err != nil:
		return fmt.Errorf("model directory: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("%s is a file, not a model directory (%s)", dir, DirContents)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s has no config.json, so it is no model directory (%s)", dir, DirContents)
	}
	return nil
}

// LoadFiles loads a checkpoint from in-memory files named as in a checkpoint
// directory (for go:embed). Tensors alias the given bytes where their dtype and
// alignment allow, so the bytes must not change while the Model is in use.
func LoadFiles(files map[string][]byte) (*Model, error) {
	read := func(name string) ([]byte, error) {
		b, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		return b, nil
	}
	return load(read, func(name string) ([]byte, func() error, error) {
		b, err := read(name)
		return b, nil, err
	}, false)
}

// load builds a Model; mapped says that open returns memory-mapped files,
// whose pages can be dropped once their weights are packed.
func load(read func(string) ([]byte, error), open func(string) ([]byte, func() error, error), mapped bool) (*Model, error) {
	tok, err := loadTokenizer(read)
	if err != nil {
		return nil, err
	}
	var lookup func(string) (int32, bool)
	if tok != nil {
		lookup = tok.ID
	}
	cfg, err := parseConfig(read, lookup)
	if err != nil {
		return nil, err
	}
	if tok != nil && tok.VocabSize() > cfg.Vocab {
		return nil, fmt.Errorf("the tokenizer has %d tokens, config.json's vocabulary only %d", tok.VocabSize(), cfg.Vocab)
	}
	m := &Model{Config: cfg, Tokenizer: tok, mapped: mapped, serial: kernels.NewPool(1)}
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()

	// The weight files may be mapped: parsing and packing them read the
	// mapping on this goroutine only.
	err = m.guardFaults(func() error {
		tensors, err := m.openWeights(read, open)
		if err != nil {
			return err
		}
		return m.buildWeights(tensors)
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return m, nil
}

// loadTokenizer loads tokenizer.json, or vocab.json and merges.txt; it returns
// nil when there are none.
func loadTokenizer(read func(string) ([]byte, error)) (*tokenizer.Tokenizer, error) {
	for _, name := range []string{"tokenizer.json", "vocab.json"} {
		_, err := read(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return tokenizer.FromFiles(read)
	}
	return nil, nil
}

// openWeights parses model.safetensors, or the shards listed in
// model.safetensors.index.json, and returns every tensor by name.
func (m *Model) openWeights(read func(string) ([]byte, error), open func(string) ([]byte, func() error, error)) (map[string]*tensorData, error) {
	var shards []string
	var index *shardIndex
	data, err := read("model.safetensors.index.json")
	switch {
	case err == nil:
		if index, shards, err = parseShardIndex(data); err != nil {
			return nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		shards = []string{"model.safetensors"}
	default:
		return nil, err
	}
	all := map[string]*tensorData{}
	for _, name := range shards {
		data, release, err := open(name)
		if err != nil {
			return nil, err
		}
		if release != nil {
			m.release = append(m.release, release)
		}
		m.FileBytes += int64(len(data))
		m.weightFiles = append(m.weightFiles, name)
		f, err := parseSafetensors(name, data)
		if err != nil {
			return nil, err
		}
		for tn, t := range f.tensors {
			if prev, dup := all[tn]; dup {
				return nil, fmt.Errorf("tensor %q is in both %s and %s", tn, prev.File, name)
			}
			all[tn] = t
		}
	}
	if index != nil {
		for tn, shard := range index.WeightMap {
			t, found := all[tn]
			if !found {
				return nil, fmt.Errorf("model.safetensors.index.json: tensor %q: not in %s", tn, shard)
			}
			if t.File != shard {
				return nil, fmt.Errorf("model.safetensors.index.json: tensor %q: listed in %s, found in %s", tn, shard, t.File)
			}
		}
	}
	return all, nil
}

// buildWeights checks that every tensor the config needs is present with the
// right shape and a float dtype, and prepares the kernels.
func (m *Model) buildWeights(all map[string]*tensorData) error {
	cfg := &m.Config
	var lay layout
	switch cfg.Family {
	case Qwen2:
		lay = qwen2Layout(cfg)
	case LLaDA:
		lay = lladaLayout(cfg)
	default:
		return fmt.Errorf("unknown family %q", cfg.Family)
	}
	dtypes := map[string]bool{}
	get := func(name string, shape ...int) (*tensorData, error) {
		t, ok := all[name]
		if !ok {
			return nil, fmt.Errorf("tensor %q: missing from the checkpoint (%s)", name, strings.Join(m.weightFiles, ", "))
		}
		if !equalShape(t.Shape, shape) {
			return nil, t.errorf("shape %v, config.json needs %v", t.Shape, shape)
		}
		switch t.DType {
		case "F32", "BF16", "F16":
		default:
			return nil, t.errorf("dtype %s: want F32, BF16 or F16", t.DType)
		}
		dtypes[t.DType] = true
		m.Params += int64(t.Elements())
		return t, nil
	}
	vector := func(name string, n int) ([]float32, error) {
		t, err := get(name, n)
		if err != nil {
			return nil, err
		}
		return t.floats(), nil
	}
	// linear packs the named [n][k] matrices, stacked in that order, as
	// one kernel weight matrix.
	linear := func(k int, parts ...part) (*kernels.Linear, error) {
		ts := make([]*tensorData, len(parts))
		for i, p := range parts {
			t, err := get(p.name, p.n, k)
			if err != nil {
				return nil, err
			}
			ts[i] = t
		}
		if m.mapped && len(ts) == 1 {
			// Packing runs on the kernels' workers, which must not read
			// the mapping (see guardFaults): give them a copy made here.
			// Stacked parts are copied by stackLinear already.
			c := *ts[0]
			c.Data = append([]byte(nil), c.Data...)
			ts[0] = &c
		}
		l := stackLinear(ts, k)
		if m.mapped {
			// The kernels keep their own packed copy: the mapped pages are
			// not needed any more (they are read again from the file if a
			// GPU backend uploads the weights), and dropping them keeps the
			// resident size at one copy of the weights.
			for _, t := range ts {
				dropPages(t.Data)
			}
		}
		return l, nil
	}

	h, q, kv, inter := cfg.Hidden, cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim, cfg.Intermediate
	emb, err := get(lay.embed, cfg.Vocab, h)
	if err != nil {
		return err
	}
	m.embed = embedding{dtype: emb.DType, data: emb.Data, dim: h}
	m.layers = make([]layer, cfg.Layers)
	for i := range m.layers {
		n := lay.layer(i)
		l := &m.layers[i]
		var errs [10]error
		l.attnNorm, errs[0] = vector(n.attnNorm, h)
		l.qkv, errs[1] = linear(h, part{n.q, q}, part{n.k, kv}, part{n.v, kv})
		l.o, errs[2] = linear(q, part{n.o, h})
		if n.qBias != "" {
			var qb, kb, vb []float32
			qb, errs[3] = vector(n.qBias, q)
			kb, errs[4] = vector(n.kBias, kv)
			vb, errs[5] = vector(n.vBias, kv)
			l.qkvBias = append(append(qb, kb...), vb...)
		}
		l.mlpNorm, errs[6] = vector(n.mlpNorm, h)
		l.gateUp, errs[7] = linear(h, part{n.gate, inter}, part{n.up, inter})
		l.down, errs[8] = linear(inter, part{n.down, h})
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
	}
	if m.norm, err = vector(lay.norm, h); err != nil {
		return err
	}
	if lay.head != "" {
		if m.head, err = linear(h, part{lay.head, cfg.Vocab}); err != nil {
			return err
		}
	} else {
		src := emb
		if m.mapped {
			c := *emb // packed on the workers: see linear above
			c.Data = append([]byte(nil), c.Data...)
			src = &c
		}
		m.head = src.linear(cfg.Vocab, h)
	}
	m.tensors, m.lay = all, lay
	switch len(dtypes) {
	case 1:
		for d := range dtypes {
			m.DType = d
		}
	default:
		m.DType = "mixed"
	}
	return nil
}

func equalShape(a []int, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// littleEndian reports whether this machine stores numbers as safetensors
// files do, so that tensor bytes can be used in place.
func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// floats returns the tensor widened to float32 (a copy; used for the small
// norm and bias vectors).
func (t *tensorData) floats() []float32 {
	n := t.Elements()
	out := make([]float32, n)
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = kernels.BF16ToF32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	case "F16":
		for i := range out {
			out[i] = kernels.F16ToF32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	}
	return out
}

// uint16s returns the raw 16-bit elements, aliasing the file where the bytes
// are aligned and little-endian.
func (t *tensorData) uint16s() []uint16 {
	n := t.Elements()
	if n == 0 {
		return nil
	}
	if littleEndian() && uintptr(unsafe.Pointer(&t.Data[0]))%2 == 0 {
		return unsafe.Slice((*uint16)(unsafe.Pointer(&t.Data[0])), n)
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(t.Data[2*i:])
	}
	return out
}

// float32s returns the elements of an F32 tensor, aliasing the file where the
// bytes are aligned and little-endian.
func (t *tensorData) float32s() []float32 {
	n := t.Elements()
	if n == 0 {
		return nil
	}
	if littleEndian() && uintptr(unsafe.Pointer(&t.Data[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&t.Data[0])), n)
	}
	return t.floats()
}

// part names one matrix of a stacked Linear and its rows.
type part struct {
	name string
	n    int
}

// stackLinear prepares the tensors, each of shape [n_i, k], stacked along
// their rows as one kernel weight matrix. Tensors of one 16-bit dtype stay
// 16-bit; a mix of dtypes is widened to float32 (exactly).
func stackLinear(ts []*tensorData, k int) *kernels.Linear {
	if len(ts) == 1 {
		return ts[0].linear(ts[0].Shape[0], k)
	}
	n, same := 0, true
	for _, t := range ts {
		n += t.Shape[0]
		same = same && t.DType == ts[0].DType
	}
	switch {
	case same && ts[0].DType == "BF16", same && ts[0].DType == "F16":
		w := make([]uint16, 0, n*k)
		for _, t := range ts {
			w = append(w, t.uint16s()...)
		}
		if ts[0].DType == "BF16" {
			return kernels.NewLinearBF16(w, n, k)
		}
		return kernels.NewLinearF16(w, n, k)
	default:
		w := make([]float32, 0, n*k)
		for _, t := range ts {
			if t.DType == "F32" {
				w = append(w, t.float32s()...)
			} else {
				w = append(w, t.floats()...)
			}
		}
		return kernels.NewLinearF32(w, n, k)
	}
}

// linear prepares the tensor, of shape [n, k], as a kernel weight matrix.
func (t *tensorData) linear(n, k int) *kernels.Linear {
	switch t.DType {
	case "BF16":
		return kernels.NewLinearBF16(t.uint16s(), n, k)
	case "F16":
		return kernels.NewLinearF16(t.uint16s(), n, k)
	default:
		return kernels.NewLinearF32(t.float32s(), n, k)
	}
}
