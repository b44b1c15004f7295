// Command ladder plans and performs safe, step-by-step upgrades of
// replicated services. Run `ladder --help` for the commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ladder-dev/ladder/internal/cli"
	"github.com/ladder-dev/ladder/upgrade"
)

func main() {
	// The first SIGINT or SIGTERM ends ctx: waits stop, the action under
	// way (a replica's replace, a job) finishes and is journaled, and the
	// command stops there. The second ends abort: the action is cut short.
	ctx, stop := context.WithCancelCause(context.Background())
	abort, abortNow := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		stop(fmt.Errorf("%w by %s", upgrade.ErrInterrupted, sig))
		fmt.Fprintf(os.Stderr, "\nladder: %s: stopping once the action under way has finished (again to stop at once)\n", sig)
		sig = <-sigs
		abortNow(fmt.Errorf("%w by a second %s", upgrade.ErrInterrupted, sig))
		fmt.Fprintf(os.Stderr, "\nladder: %s again: stopping at once\n", sig)
	}()
	code := cli.Run(cli.WithAbort(ctx, abort), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	signal.Stop(sigs)
	os.Exit(code)
}
