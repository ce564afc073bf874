package main

import (
	"context"
	"fmt"
	"io"
)

// benchDevice is written by the GPU backend's owner; this placeholder keeps
// the build whole.
func benchDevice(ctx context.Context, stdout, stderr io.Writer, device, modelDir string) error {
	return fmt.Errorf("diffill bench --device %s is not built yet", device)
}
