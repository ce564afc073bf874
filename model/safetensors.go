package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
)

// The safetensors format: an 8-byte little-endian header length N, N bytes of
// JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}), then the tensor bytes; offsets are
// relative to the end of the header. Every check below turns a truncated,
// hostile or mismatched file into an error naming the file and the tensor.

// maxHeaderSize bounds the JSON header. The largest published checkpoints'
// headers are a few hundred kilobytes; 100 MB leaves room and stops a forged
// length from allocating gigabytes.
const maxHeaderSize = 100 << 20

// dtypeSize returns the size in bytes of one element of a safetensors dtype,
// or 0 for an unknown dtype.
func dtypeSize(dtype string) int {
	switch dtype {
	case "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3":
		return 1
	case "I16", "U16", "F16", "BF16":
		return 2
	case "I32", "U32", "F32":
		return 4
	case "I64", "U64", "F64":
		return 8
	}
	return 0
}

// tensorData is one tensor of a safetensors file; Data aliases the file's bytes.
type tensorData struct {
	Name  string
	File  string
	DType string
	Shape []int
	Data  []byte
}

// Elements returns the product of the shape.
func (t *tensorData) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

func (t *tensorData) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: tensor %q: %s", t.File, t.Name, fmt.Sprintf(format, args...))
}

// safetensorsFile is a parsed and validated safetensors file.
type safetensorsFile struct {
	name     string
	tensors  map[string]*tensorData
	metadata map[string]string
}

// parseSafetensors validates data as a safetensors file named name. The
// returned tensors alias data.
func parseSafetensors(name string, data []byte) (*safetensorsFile, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%s: %d bytes: too short for a safetensors header", name, len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > maxHeaderSize {
		return nil, fmt.Errorf("%s: header length %d exceeds the %d-byte limit", name, n, maxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("%s: header length %d runs past the end of the file (%d bytes): truncated?", name, n, len(data))
	}
	header := data[8 : 8+n]
	body := data[8+n:]
	if len(header) == 0 || header[0] != '{' {
		return nil, fmt.Errorf("%s: header does not start with a JSON object", name)
	}

	f := &safetensorsFile{name: name, tensors: map[string]*tensorData{}}
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{' checked above
		return nil, fmt.Errorf("%s: header: %w", name, err)
	}
	type span struct {
		begin, end uint64
		name       string
	}
	var spans []span
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: header: %w", name, err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%s: header: unexpected %v", name, tok)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: header: value of %q: %w", name, key, err)
		}
		if key == "__metadata__" {
			if f.metadata != nil {
				return nil, fmt.Errorf("%s: header: duplicate __metadata__", name)
			}
			if err := strictUnmarshal(raw, &f.metadata); err != nil {
				return nil, fmt.Errorf("%s: header: __metadata__ must map strings to strings: %w", name, err)
			}
			if f.metadata == nil {
				f.metadata = map[string]string{}
			}
			continue
		}
		if _, dup := f.tensors[key]; dup {
			return nil, fmt.Errorf("%s: tensor %q appears twice in the header", name, key)
		}
		t := &tensorData{Name: key, File: name}
		var e struct {
			DType       string        `json:"dtype"`
			Shape       []json.Number `json:"shape"`
			DataOffsets []json.Number `json:"data_offsets"`
		}
		if err := strictUnmarshal(raw, &e); err != nil {
			return nil, t.errorf("bad header entry: %v", err)
		}
		t.DType = e.DType
		size := dtypeSize(e.DType)
		if size == 0 {
			return nil, t.errorf("unknown dtype %q", e.DType)
		}
		if e.Shape == nil {
			return nil, t.errorf("missing shape")
		}
		elems := uint64(1)
		for _, d := range e.Shape {
			v, err := strconv.ParseUint(string(d), 10, 63)
			if err != nil {
				return nil, t.errorf("bad dimension %s in shape", d)
			}
			if v != 0 && elems > math.MaxInt64/8/v {
				return nil, t.errorf("shape %v overflows", e.Shape)
			}
			elems *= v
			t.Shape = append(t.Shape, int(v))
		}
		if len(e.DataOffsets) != 2 {
			return nil, t.errorf("data_offsets must have 2 entries, has %d", len(e.DataOffsets))
		}
		var off [2]uint64
		for i, o := range e.DataOffsets {
			v, err := strconv.ParseUint(string(o), 10, 64)
			if err != nil {
				return nil, t.errorf("bad data offset %s", o)
			}
			off[i] = v
		}
		if off[0] > off[1] {
			return nil, t.errorf("data offsets [%d, %d] are reversed", off[0], off[1])
		}
		if off[1] > uint64(len(body)) {
			return nil, t.errorf("data [%d, %d) runs past the end of the data (%d bytes): truncated file?", off[0], off[1], len(body))
		}
		if want := elems * uint64(size); off[1]-off[0] != want {
			return nil, t.errorf("shape %v of %s needs %d bytes, data_offsets span %d", t.Shape, t.DType, want, off[1]-off[0])
		}
		t.Data = body[off[0]:off[1]:off[1]]
		f.tensors[key] = t
		spans = append(spans, span{off[0], off[1], key})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("%s: header: %w", name, err)
	}
	// Only padding may follow the object (writers pad the header with spaces
	// to align the data).
	if rest := header[dec.InputOffset():]; len(bytes.TrimRight(rest, " \t\r\n\x00")) != 0 {
		return nil, fmt.Errorf("%s: header: trailing data after the JSON object", name)
	}
	// The tensors must tile the data exactly: no overlap (one byte read as two
	// tensors) and no holes (unindexed bytes), as the reference implementation
	// requires.
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var at uint64
	for _, s := range spans {
		if s.begin < at {
			return nil, fmt.Errorf("%s: tensor %q: data [%d, %d) overlaps another tensor", name, s.name, s.begin, s.end)
		}
		if s.begin > at {
			return nil, fmt.Errorf("%s: tensor %q: unindexed bytes [%d, %d) before it", name, s.name, at, s.begin)
		}
		at = s.end
	}
	if at != uint64(len(body)) {
		return nil, fmt.Errorf("%s: %d bytes after the last tensor are not indexed", name, uint64(len(body))-at)
	}
	return f, nil
}

// strictUnmarshal decodes one JSON value, rejecting unknown fields.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// shardIndex is model.safetensors.index.json.
type shardIndex struct {
	WeightMap map[string]string `json:"weight_map"`
}

// parseShardIndex reads a sharded checkpoint's index and returns its shard
// file names in a stable order.
func parseShardIndex(data []byte) (*shardIndex, []string, error) {
	const file = "model.safetensors.index.json"
	var idx shardIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%s: empty weight_map", file)
	}
	seen := map[string]bool{}
	var shards []string
	for tensor, shard := range idx.WeightMap {
		// A shard is a file beside the index: a path could read anything.
		if shard == "" || shard != path.Base(shard) || strings.ContainsAny(shard, `/\`) || shard == "." || shard == ".." {
			return nil, nil, fmt.Errorf("%s: tensor %q: shard %q is not a plain file name", file, tensor, shard)
		}
		if !seen[shard] {
			seen[shard] = true
			shards = append(shards, shard)
		}
	}
	sort.Strings(shards)
	return &idx, shards, nil
}
