package main

import "testing"

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
	for _, d := range []string{"", "cpu"} {
		if err := checkDevice(d); err != nil {
			t.Errorf("checkDevice(%q): %v", d, err)
		}
	}
	if err := checkDevice("tpu"); err == nil {
		t.Error("checkDevice(tpu): no error")
	}
}
