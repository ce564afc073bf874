package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/diffill/diffill/model/kernels"
)

// runVersion prints what a bug report needs: the module version and the
// commit the binary was built from, the Go toolchain, and the CPU features
// the kernels found.
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(stdout, "Usage: diffill version   (module version, VCS revision, Go version, CPU features)")
			return nil
		}
		fmt.Fprintf(stderr, "diffill version: takes no arguments (got %q)\n", args[0])
		return errUsage
	}
	fmt.Fprint(stdout, versionText(readBuildInfo()))
	return nil
}

func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// versionText formats bi (nil: no build information in the binary).
func versionText(bi *debug.BuildInfo) string {
	var b strings.Builder
	ver, path, goVer := "(unknown)", "github.com/diffill/diffill", runtime.Version()
	rev := "(unknown: not built from a git checkout, or with -buildvcs=false)"
	if bi != nil {
		if bi.Main.Path != "" {
			path = bi.Main.Path
		}
		if bi.Main.Version != "" {
			ver = bi.Main.Version // "(devel)" when built from a clone
		}
		if bi.GoVersion != "" {
			goVer = bi.GoVersion
		}
		s := map[string]string{}
		for _, kv := range bi.Settings {
			s[kv.Key] = kv.Value
		}
		if r := s["vcs.revision"]; r != "" {
			rev = r
			if t := s["vcs.time"]; t != "" {
				rev += " (" + t + ")"
			}
			if s["vcs.modified"] == "true" {
				rev += ", with uncommitted changes"
			}
		}
	}
	fmt.Fprintf(&b, "diffill %s\n", ver)
	fmt.Fprintf(&b, "module:   %s\n", path)
	fmt.Fprintf(&b, "revision: %s\n", rev)
	fmt.Fprintf(&b, "go:       %s %s/%s\n", goVer, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "kernels:  %s path; CPU has %s; %d CPUs\n", kernels.ISA(), cpuFeatures(), runtime.NumCPU())
	return b.String()
}

// cpuFeatures lists the x86 features the kernels choose their path by.
func cpuFeatures() string {
	if runtime.GOARCH != "amd64" {
		return "no x86 features (" + runtime.GOARCH + ": pure Go kernels)"
	}
	return kernels.Features()
}
