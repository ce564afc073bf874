package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/diffill/diffill/model"
)

func TestListenAddr(t *testing.T) {
	for _, tt := range []struct {
		in       string
		addr     string
		explicit bool
		bad      bool
	}{
		{"7777", "127.0.0.1:7777", false, false},
		{":7777", "127.0.0.1:7777", false, false},
		{"127.0.0.1:7777", "127.0.0.1:7777", true, false},
		{"[::1]:7777", "[::1]:7777", true, false},
		{"0.0.0.0:7777", "0.0.0.0:7777", true, false}, // named: allowed, with a warning
		{"localhost", "", false, true},
		{"99999", "", false, true},
	} {
		addr, explicit, err := listenAddr(tt.in)
		if (err != nil) != tt.bad || addr != tt.addr || explicit != tt.explicit {
			t.Errorf("listenAddr(%q) = %q, %v, %v; want %q, %v, bad=%v", tt.in, addr, explicit, err, tt.addr, tt.explicit, tt.bad)
		}
	}
}

func TestCheckDevice(t *testing.T) {
	for _, d := range []string{"", "auto", "cpu", "cuda"} {
		if err := checkDevice(d); err != nil {
			t.Errorf("checkDevice(%q): %v", d, err)
		}
	}
	if err := checkDevice("tpu"); err == nil {
		t.Error("checkDevice(tpu): no error")
	}
}

// TestAttachDevice: "auto" runs wherever it can and, on the CPU, says why
// in one line; "cuda" on a machine without a usable GPU is an error that
// names the way out, not a silent fallback.
func TestAttachDevice(t *testing.T) {
	m, err := model.Load("../../model/testdata/qwen2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var lines []string
	logf := func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }
	got, err := attachDevice(m, "auto", logf)
	if err != nil {
		t.Fatalf("auto: %v", err)
	}
	switch got {
	case "cpu":
		if len(lines) != 1 {
			t.Errorf("auto fell back to the CPU with %d log lines, want 1: %q", len(lines), lines)
		}
	case "cuda":
		return // a GPU machine: nothing more to check here
	default:
		t.Fatalf("auto chose %q", got)
	}
	if got, err := attachDevice(m, "cpu", logf); err != nil || got != "cpu" {
		t.Errorf("cpu: %q, %v", got, err)
	}
	if _, err := attachDevice(m, "cuda", logf); err == nil || !strings.Contains(err.Error(), "--device cpu") {
		t.Errorf("cuda without a GPU: err = %v, want one that names --device cpu", err)
	}
	if _, err := attachDevice(m, "tpu", logf); err == nil {
		t.Error("tpu accepted")
	}
}
