// Command diffill is a language server and command-line tool for code
// completion, fill-in-the-middle and in-place rewriting with bidirectional
// (masked-diffusion) language models.
//
// Usage:
//
//	diffill serve   [--listen ADDR] [--model DIR] ...   LSP over stdio or loopback TCP
//	diffill infill  FILE | --jsonl                      fill holes, complete, infill or rewrite
//	diffill eval    --cases FILE.jsonl                  exact match, edit similarity, latency
//	diffill model   info DIR | forward DIR --text ...   inspect a checkpoint
//	diffill bench   [--lsp] [--device cpu|cuda]         user-facing performance figures
//	diffill version                                     version, revision, Go version, CPU features
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"gorgonia.org/tensor"

	"github.com/diffill/diffill/model/kernels"
)

type command struct {
	name  string
	short string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the language server (stdio, or --listen 127.0.0.1:PORT)", runServe},
		{"infill", "fill holes, complete at a point, infill or rewrite a range of a file", runInfill},
		{"eval", "evaluate infilling on a JSONL file of cases", runEval},
		{"model", "inspect a checkpoint: info DIR, forward DIR --text ...", runModel},
		{"bench", "print latency, tokens/s and GFLOP/s figures", runBench},
		{"version", "print the version, VCS revision, Go version and CPU features", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "diffill: code infilling with bidirectional diffusion language models\n\nUsage: diffill <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.short)
	}
	fmt.Fprintf(w, "\nRun 'diffill <command> -h' for a command's flags.\n")
}

func main() {
	// gorgonia's tensor package, the engine's tensor type at its API
	// boundary, multiplies through a process-wide BLAS; give it diffill's
	// kernels instead of its gonum default (~22 GFLOP/s here). main is the
	// one place allowed to set process-wide state.
	tensor.Use(kernels.NewBLAS(nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	if strings.HasPrefix(args[0], "-") {
		// "diffill --device cpu infill f.go": the flags belong to a command.
		fmt.Fprintf(stderr, "diffill: %s comes before the command: flags go after it%s.\n"+
			"Run 'diffill -h' for the commands, 'diffill <command> -h' for a command's flags.\n", args[0], reordered(args))
		return 2
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			// Errors from package infill already begin with "infill: ".
			msg := strings.TrimPrefix(err.Error(), c.name+": ")
			fmt.Fprintf(stderr, "diffill %s: %s\n", c.name, msg)
			return 1
		}
	}
	fmt.Fprintf(stderr, "diffill: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage reports a command-line mistake that has already been explained
// on stderr; the process exits with status 2.
var errUsage = errors.New("usage")

// reordered spells args with the flags before the command moved after it
// (" (diffill infill --device cpu f.go)"), or "" when no command follows.
func reordered(args []string) string {
	for i, a := range args {
		for _, c := range commands() {
			if a == c.name {
				re := append(append([]string{a}, args[:i]...), args[i+1:]...)
				return " (diffill " + strings.Join(re, " ") + ")"
			}
		}
	}
	return ""
}
