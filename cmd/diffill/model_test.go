package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/diffill/diffill/model"
)

const tinyModel = "../../model/testdata/qwen2-tiny"

func TestModelInfo(t *testing.T) {
	var out, errb bytes.Buffer
	if err := runModel(context.Background(), []string{"info", tinyModel}, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	for _, want := range []string{"qwen2", "94784", "vocab         320", "F32", "shift_logits  false", `mask 1 "<|mask|>"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("info lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := runModel(context.Background(), []string{"info", "--json", tinyModel}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var info modelInfo
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	if info.Family != "qwen2" || info.Special["pad"] != 2 || info.FileBytes == 0 {
		t.Fatalf("%+v", info)
	}
}

func TestModelForward(t *testing.T) {
	var out, errb bytes.Buffer
	err := runModel(context.Background(), []string{"forward", tinyModel, "--text", "x := <|mask|>", "--top", "3"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	var res forwardOutput
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	last := res.Positions[len(res.Positions)-1]
	if last.ID != 1 || *last.Text != "<|mask|>" || len(last.Top) != 3 || last.Top[0].Logit < last.Top[2].Logit {
		t.Fatalf("%+v", last)
	}

	out.Reset()
	if err := runModel(context.Background(), []string{"forward", "--ids", "5, 6,1", tinyModel}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Positions) != 3 || len(res.Positions[0].Top) != 5 {
		t.Fatalf("%v %+v", err, res)
	}

	for _, args := range [][]string{
		{"forward", tinyModel},
		{"forward", tinyModel, "--ids", "1", "--text", "x"},
		{"info"},
		{"bogus"},
	} {
		if err := runModel(context.Background(), args, &out, &errb); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
	err = runModel(context.Background(), []string{"forward", tinyModel, "--ids", "1,x"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), `"x" is not a token id`) {
		t.Errorf("err = %v", err)
	}
	err = runModel(context.Background(), []string{"info", "/nonexistent/dir"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("err = %v", err)
	}
}

func TestBenchForward(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model for about two seconds")
	}
	m := loadTinyForBench(t)
	var out bytes.Buffer
	if err := benchForward(context.Background(), &out, m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "tokens/s") || !strings.Contains(out.String(), "cached step 64 of  512") {
		t.Fatalf("%s", out.String())
	}
}

func loadTinyForBench(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.Load(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
