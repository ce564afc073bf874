package main

import (
	"fmt"

	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/cuda"
)

// checkDevice refuses a device name diffill does not know.
func checkDevice(device string) error {
	switch device {
	case "", "auto", "cpu", "cuda", "gpu":
		return nil
	}
	return fmt.Errorf("--device %q: want auto, cpu or cuda", device)
}

// attachDevice moves m onto the device the user asked for and returns the
// device it runs on. "auto" (or "") uses an NVIDIA GPU when the driver and
// a capable card are present and otherwise stays on the CPU, saying why in
// one line through logf; "cuda" fails instead of falling back, so a user who
// asked for the GPU learns that they are not getting it.
func attachDevice(m *model.Model, device string, logf func(format string, a ...any)) (string, error) {
	if err := checkDevice(device); err != nil {
		return "", err
	}
	if device == "cpu" {
		return "cpu", nil
	}
	got, err := cuda.Select(m, device, cuda.Options{}, logf)
	if err != nil {
		return "", fmt.Errorf("device %s: %w (use --device cpu to run on the CPU)", device, err)
	}
	return got, nil
}
