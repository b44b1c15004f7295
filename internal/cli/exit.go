package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/ladder-dev/ladder/upgrade"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitRefused     = 3
	ExitLocked      = 4
	ExitInterrupted = 130
)

// exitError carries the process exit code for an error.
type exitError struct {
	code int
	err  error
	// hint says what to do next, when the error does not.
	hint string
	// quiet: the command has already printed everything the user needs.
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage or input error (exit 2).
func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// withCode marks err with an exit code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// withHint marks err with an exit code and what to do next.
func withHint(code int, err error, hint string) error {
	return &exitError{code: code, err: err, hint: hint}
}

// hintOf finds what to do next after err: the hint of the exit error, of
// a failed step, or of an unfinished upgrade.
func hintOf(err error) string {
	var ee *exitError
	if errors.As(err, &ee) && ee.hint != "" {
		return ee.hint
	}
	var se *upgrade.StepError
	if errors.As(err, &se) {
		return se.Hint
	}
	var ue *upgrade.UnfinishedError
	if errors.As(err, &ue) {
		return ue.Hint
	}
	return ""
}

// silent is an exit code with nothing more to print.
func silent(code int) error {
	return &exitError{code: code, err: fmt.Errorf("exit %d", code), quiet: true}
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	return ExitFailed
}
