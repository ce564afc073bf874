package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/diffill/diffill/model/kernels"
)

// runBench prints the user-facing performance figures: kernel GFLOP/s
// against the machine's peak, forward-pass time, and infill latency. Each
// section measures its own baseline in the same run, because these
// machines are too noisy for figures taken at different times to compare.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diffill bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelDir := fs.String("model", "", "checkpoint directory (default: the built-in model)")
	only := fs.String("only", "kernels,forward,infill", "comma-separated sections: kernels, forward, infill")
	lspBench := fs.Bool("lsp", false, "measure the language server instead: round trips, start-up, RSS, cancellation bursts")
	device := fs.String("device", "cpu", "cpu or cuda")
	kernelPath := fs.String("kernels", "", "kernel `path`: avx512, avx2, go or auto (default: $"+kernels.EnvKernels+", else the best this CPU runs); with --lsp it is passed to the server through $"+kernels.EnvKernels)
	server := fs.String("server", "", "with --lsp: run `serve` from this diffill `binary` (another build, for before/after figures side by side) instead of this one")
	httpBench := fs.Bool("http", false, "measure `serve --http` instead: concurrent /infill clients on loopback (see --clients, --duration, --requests)")
	httpClients := fs.String("clients", "1,8", "with --http: comma-separated counts of concurrent clients, one round each")
	httpDur := fs.Duration("duration", 20*time.Second, "with --http: the most a round lasts")
	httpReqs := fs.Int("requests", 200, "with --http: the most requests each client sends in a round")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: diffill bench [--model DIR] [--only kernels,forward,infill] [--lsp] [--device cpu|cuda] [--kernels avx512|avx2|go]\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "diffill bench: unexpected argument %q\nRun 'diffill bench -h' for its flags.\n", fs.Arg(0))
		return errUsage
	}
	if *kernelPath != "" {
		// Before any weights are packed: a Linear keeps the path it was
		// packed for.
		if err := kernels.UsePath(*kernelPath, "forced by --kernels "+*kernelPath); err != nil {
			return fmt.Errorf("--kernels: %w", err)
		}
		if *lspBench {
			// The server is another process: it reads the path from its
			// environment.
			os.Setenv(kernels.EnvKernels, *kernelPath)
		}
	}
	if *httpBench {
		var counts []int
		for _, f := range strings.Split(*httpClients, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 256 {
				return fmt.Errorf("--clients %q: want counts from 1 to 256, comma-separated", *httpClients)
			}
			counts = append(counts, n)
		}
		if *httpDur <= 0 || *httpDur > 10*time.Minute || *httpReqs < 1 {
			return fmt.Errorf("--duration must be in (0, 10m] and --requests at least 1")
		}
		return benchHTTP(ctx, stdout, *modelDir, *device, counts, *httpDur, *httpReqs)
	}
	if *lspBench {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locating the diffill binary to serve: %w", err)
		}
		if *server != "" {
			exe = *server
		}
		return benchLSP(ctx, stdout, exe, *modelDir)
	}
	if *device != "cpu" {
		return benchDevice(ctx, stdout, stderr, *device, *modelDir)
	}
	sections := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		switch s = strings.TrimSpace(s); s {
		case "kernels", "forward", "infill":
			sections[s] = true
		case "":
		default:
			return fmt.Errorf("unknown bench section %q (want kernels, forward or infill)", s)
		}
	}
	if sections["kernels"] {
		fmt.Fprintln(stdout, "== kernels")
		if err := benchKernels(ctx, stdout); err != nil {
			return fmt.Errorf("kernels: %w", err)
		}
	}
	if !sections["forward"] && !sections["infill"] {
		return nil
	}
	fmt.Fprintf(stderr, "loading %s...\n", modelName(*modelDir))
	m, err := loadInfillModel(*modelDir)
	if err != nil {
		return err
	}
	defer m.Close()
	if sections["forward"] {
		fmt.Fprintln(stdout, "\n== forward")
		if err := benchForward(ctx, stdout, m); err != nil {
			return fmt.Errorf("forward: %w", err)
		}
	}
	if sections["infill"] {
		fmt.Fprintln(stdout, "\n== infill")
		if err := benchInfillDir(ctx, stdout, m, *modelDir); err != nil {
			return fmt.Errorf("infill: %w", err)
		}
	}
	return nil
}

func modelName(dir string) string {
	if dir == "" {
		return "the built-in model"
	}
	return dir
}
