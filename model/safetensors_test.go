package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// buildSafetensors assembles a file from a raw JSON header and data, so that
// tests can write any header, valid or not.
func buildSafetensors(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

// validFile is a well-formed two-tensor file: a [2,3] F32 and a [4] BF16.
func validFile() []byte {
	h := `{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"__metadata__":{"format":"pt"}}`
	return buildSafetensors(h, make([]byte, 32))
}

func TestSafetensorsValid(t *testing.T) {
	f, err := parseSafetensors("ok.safetensors", validFile())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.tensors) != 2 || f.metadata["format"] != "pt" {
		t.Fatalf("tensors %v metadata %v", f.tensors, f.metadata)
	}
	a := f.tensors["a"]
	if a.DType != "F32" || !equalShape(a.Shape, []int{2, 3}) || len(a.Data) != 24 {
		t.Fatalf("a = %+v", a)
	}
	// Padding after the header object is allowed.
	h := `{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}    `
	if _, err := parseSafetensors("pad.safetensors", buildSafetensors(h, []byte{7})); err != nil {
		t.Fatal(err)
	}
}

func TestSafetensorsHostile(t *testing.T) {
	hugeLen := make([]byte, 16)
	binary.LittleEndian.PutUint64(hugeLen, 1<<40)
	pastEnd := make([]byte, 16)
	binary.LittleEndian.PutUint64(pastEnd, 100)
	tests := []struct {
		name string
		file []byte
		want string // substring of the error
	}{
		{"empty", nil, "too short"},
		{"short", []byte{1, 2, 3}, "too short"},
		{"huge header length", hugeLen, "exceeds"},
		{"header past end", pastEnd, "truncated"},
		{"truncated data", validFile()[:40], "runs past the end"},
		{"not json", buildSafetensors(`{"a":`, nil), "header"},
		{"not an object", buildSafetensors(`[1,2]`, nil), "JSON object"},
		{"trailing junk", buildSafetensors(`{} x`, nil), "trailing"},
		{"unknown dtype", buildSafetensors(`{"w":{"dtype":"F4","shape":[1],"data_offsets":[0,1]}}`, []byte{0}), `"w": unknown dtype "F4"`},
		{"negative dim", buildSafetensors(`{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}`, []byte{0}), `"w": bad dimension`},
		{"float dim", buildSafetensors(`{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, []byte{0}), `"w": bad dimension`},
		{"overflowing shape", buildSafetensors(`{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, make([]byte, 8)), `"w": shape`},
		{"missing shape", buildSafetensors(`{"w":{"dtype":"U8","data_offsets":[0,1]}}`, []byte{0}), `"w": missing shape`},
		{"one offset", buildSafetensors(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[1]}}`, []byte{0}), `"w": data_offsets`},
		{"reversed offsets", buildSafetensors(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}`, []byte{0}), `"w": data offsets [1, 0] are reversed`},
		{"offset past end", buildSafetensors(`{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, []byte{0}), `"w": data [0, 4) runs past the end`},
		{"size mismatch", buildSafetensors(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), `"w": shape [2] of F32 needs 8 bytes, data_offsets span 4`},
		{"overlap", buildSafetensors(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, make([]byte, 4)), "overlaps"},
		{"hole", buildSafetensors(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}`, make([]byte, 5)), "unindexed"},
		{"unindexed tail", buildSafetensors(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, make([]byte, 5)), "not indexed"},
		{"duplicate tensor", buildSafetensors(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, make([]byte, 2)), `"a" appears twice`},
		{"unknown field", buildSafetensors(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}`, make([]byte, 1)), `"a": bad header entry`},
		{"bad metadata", buildSafetensors(`{"__metadata__":{"k":1}}`, nil), "__metadata__"},
		{"entry not object", buildSafetensors(`{"a":3}`, nil), `"a": bad header entry`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSafetensors("x.safetensors", tc.file)
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "x.safetensors") {
				t.Fatalf("error %q: want it to name the file and contain %q", err, tc.want)
			}
		})
	}
}

// FuzzSafetensorsHeader feeds arbitrary bytes to the parser: it must return an
// error or a file whose every tensor lies inside the data with a size that
// matches its shape, and never panic. Seeds: testdata/fuzz/FuzzSafetensorsHeader.
func FuzzSafetensorsHeader(f *testing.F) {
	f.Add(validFile())
	f.Add(buildSafetensors(`{}`, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseSafetensors("fuzz.safetensors", data)
		if err != nil {
			return
		}
		total := 0
		for name, tn := range st.tensors {
			n := dtypeSize(tn.DType)
			if n == 0 {
				t.Fatalf("%s: accepted dtype %q", name, tn.DType)
			}
			if len(tn.Data) != tn.Elements()*n {
				t.Fatalf("%s: %d bytes for shape %v of %s", name, len(tn.Data), tn.Shape, tn.DType)
			}
			total += len(tn.Data)
		}
		if total > len(data) {
			t.Fatalf("tensors cover %d bytes of a %d-byte file", total, len(data))
		}
	})
}

// copyDir copies a test checkpoint so that a test can alter it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// rewriteTensors rewrites dir/model.safetensors after edit has changed its
// header entries (name -> entry) and data.
func rewriteTensors(t *testing.T, dir string, edit func(h map[string]map[string]any, data []byte) []byte) {
	t.Helper()
	path := filepath.Join(dir, "model.safetensors")
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(file)
	var h map[string]map[string]any
	if err := json.Unmarshal(file[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	data := edit(h, append([]byte(nil), file[8+n:]...))
	hdr, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buildSafetensors(string(hdr), data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMismatched(t *testing.T) {
	const q0 = "model.layers.0.self_attn.q_proj.weight"
	tests := []struct {
		name string
		edit func(dir string)
		want string
	}{
		{"missing tensor", func(dir string) {
			rewriteTensors(t, dir, func(h map[string]map[string]any, data []byte) []byte {
				// Turn the tensor into an unused one of the same size.
				h["unused.weight"] = h[q0]
				delete(h, q0)
				return data
			})
		}, `tensor "` + q0 + `": missing from the checkpoint (model.safetensors)`},
		{"wrong shape", func(dir string) {
			rewriteTensors(t, dir, func(h map[string]map[string]any, data []byte) []byte {
				h[q0]["shape"] = []int{32, 128}
				return data
			})
		}, `model.safetensors: tensor "` + q0 + `": shape [32 128], config.json needs [64 64]`},
		{"integer dtype", func(dir string) {
			rewriteTensors(t, dir, func(h map[string]map[string]any, data []byte) []byte {
				h[q0]["dtype"] = "I32"
				return data
			})
		}, `tensor "` + q0 + `": dtype I32`},
		{"config disagrees", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			b = bytes.Replace(b, []byte(`"intermediate_size": 128`), []byte(`"intermediate_size": 96`), 1)
			os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
		}, `mlp.gate_proj.weight": shape [128 64], config.json needs [96 64]`},
		{"truncated", func(dir string) {
			p := filepath.Join(dir, "model.safetensors")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-100], 0o644)
		}, "runs past the end"},
		{"no weights", func(dir string) {
			os.Remove(filepath.Join(dir, "model.safetensors"))
		}, "model.safetensors"},
		{"bad config", func(dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "qwen2", "vocab_size": 10, "hidden_size": "big"}`), 0o644)
		}, `config.json: hidden_size: want an integer`},
		{"unknown model", func(dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "gpt2"}`), 0o644)
		}, `unsupported model_type "gpt2"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, filepath.Join("testdata", "qwen2-tiny"))
			tc.edit(dir)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// writeShards splits dir/model.safetensors into two shards with an index.
func writeShards(t *testing.T, dir string, shardName func(i int) string) {
	t.Helper()
	path := filepath.Join(dir, "model.safetensors")
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseSafetensors("model.safetensors", file)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		DType   string `json:"dtype"`
		Shape   []int  `json:"shape"`
		Offsets [2]int `json:"data_offsets"`
	}
	headers := []map[string]entry{{}, {}}
	datas := [][]byte{nil, nil}
	weightMap := map[string]string{}
	i := 0
	for name, tn := range st.tensors {
		s := i % 2
		i++
		headers[s][name] = entry{tn.DType, tn.Shape, [2]int{len(datas[s]), len(datas[s]) + len(tn.Data)}}
		datas[s] = append(datas[s], tn.Data...)
		weightMap[name] = shardName(s)
	}
	for s := range 2 {
		h, _ := json.Marshal(headers[s])
		if err := os.WriteFile(filepath.Join(dir, shardName(s)), buildSafetensors(string(h), datas[s]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": len(file)}, "weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
}

func TestLoadSharded(t *testing.T) {
	dir := copyDir(t, filepath.Join("testdata", "llada-tiny"))
	writeShards(t, dir, func(i int) string { return fmt.Sprintf("model-%05d-of-00002.safetensors", i+1) })
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	checkGoldenCase(t, m, filepath.Join("testdata", "llada-tiny"), "mid", 1e-4)

	// An index naming a file outside the directory is refused.
	dir = copyDir(t, filepath.Join("testdata", "llada-tiny"))
	writeShards(t, dir, func(i int) string { return fmt.Sprintf("model-%d.safetensors", i) })
	idx, _ := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	idx = bytes.Replace(idx, []byte(`"model-0.safetensors"`), []byte(`"../model-0.safetensors"`), 1)
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a plain file name") {
		t.Fatalf("err = %v, want a refusal of the path", err)
	}
}

func TestLoadFiles(t *testing.T) {
	dir := filepath.Join("testdata", "qwen2-tiny-bf16")
	files := map[string][]byte{}
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	m, err := LoadFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	checkGoldenCase(t, m, dir, "long", 1e-4)
	if _, err := LoadFiles(map[string][]byte{"config.json": files["config.json"]}); err == nil {
		t.Fatal("loaded without weights")
	}
}

// TestLoadF16 stores the tiny checkpoint's weights as F16: the logits move by
// the rounding of the weights only.
func TestLoadF16(t *testing.T) {
	dir := copyDir(t, filepath.Join("testdata", "qwen2-tiny"))
	rewriteTensors(t, dir, func(h map[string]map[string]any, data []byte) []byte {
		type span struct {
			name       string
			begin, end int
		}
		var spans []span
		for name, e := range h {
			if name == "__metadata__" {
				continue
			}
			off := e["data_offsets"].([]any)
			spans = append(spans, span{name, int(off[0].(float64)), int(off[1].(float64))})
		}
		var out []byte
		for _, s := range spans {
			b := len(out)
			for i := s.begin; i < s.end; i += 4 {
				f := float32frombytes(data[i:])
				out = binary.LittleEndian.AppendUint16(out, f32ToF16(f))
			}
			h[s.name]["dtype"] = "F16"
			h[s.name]["data_offsets"] = []int{b, len(out)}
		}
		return out
	})
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.DType != "F16" {
		t.Fatalf("dtype %s", m.DType)
	}
	checkGoldenCase(t, m, filepath.Join("testdata", "qwen2-tiny"), "mid", 2e-2)
}

func float32frombytes(b []byte) float32 {
	return float32FromBits(binary.LittleEndian.Uint32(b))
}
