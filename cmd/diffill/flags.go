package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// parseFlags parses args into fs. A mistake (an unknown flag, a bad value)
// gets one line and where to look, not the whole usage; -h prints the
// usage. It returns flag.ErrHelp for -h and errUsage for a mistake.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if fs.Usage != nil {
			fs.Usage()
		} else {
			fmt.Fprintf(stderr, "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	default:
		fmt.Fprintf(stderr, "%s: %v\nRun '%s -h' for its flags.\n", fs.Name(), err, fs.Name())
		return errUsage
	}
}
