package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/spectra-fab/spectra/node"
)

// usageError is a command line the flag package refused; it has printed
// why and the command's usage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// parseFlags parses a command's flags and SPECTRA_* variables (see
// node.Flags). A malformed variable is an error naming it; a refused
// command line is a usageError.
func parseFlags(f *node.Flags, args []string) error {
	if err := f.Parse(args, os.LookupEnv); err != nil {
		if _, ok := errors.AsType[*node.EnvError](err); ok {
			return err
		}
		return usageError{err}
	}
	return nil
}

// commandError is what a command returns for an error parsing its
// flags: nothing more for -h, exit status 2 for a refused command line
// (already explained), and the error itself otherwise.
func commandError(cmd string, err error) error {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil
	case errors.As(err, new(usageError)):
		return exitError{2}
	}
	return fmt.Errorf("%s: %w", cmd, err)
}
