package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Version is the ladder build's version, stamped at link time with
// -ldflags "-X github.com/ladder-dev/ladder/internal/cli.Version=…".
var Version = "0.1.0-dev"

// env is what every command gets: streams and the contexts.
type env struct {
	// ctx ends at a first interruption: waits stop, actions finish.
	ctx context.Context
	// abort ends at a second: actions are cut short.
	abort  context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// format is -o/--output.
	format string
	// verbose is -v/--verbose.
	verbose bool
	// caFile is --ca and insecureTLS --insecure-tls (see trust.go);
	// tlsCache holds each cluster's TLS configuration once built.
	caFile      string
	insecureTLS bool
	tlsCache    map[string]*tls.Config
}

type abortKey struct{}

// WithAbort returns ctx carrying abort, the context that a second
// interruption ends; Run gives it to the commands that change a cluster.
func WithAbort(ctx, abort context.Context) context.Context {
	return context.WithValue(ctx, abortKey{}, abort)
}

// Run executes the ladder command line and returns the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	abort, _ := ctx.Value(abortKey{}).(context.Context)
	if abort == nil {
		abort = context.Background()
	}
	e := &env{ctx: ctx, abort: abort, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(e)
	// Parsing sets it again; an error in the arguments comes before.
	e.format = outputIn(args)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	var ee *exitError
	quiet := errors.As(err, &ee) && ee.quiet
	hint := hintOf(err)
	if code == ExitUsage && hint == "" && !strings.Contains(err.Error(), "--help") {
		hint = strings.Replace(fmt.Sprintf("run 'ladder %s --help' for usage", commandPath(root, args)), "  ", " ", 1)
	}
	if e.json() && !quiet {
		_ = writeJSON(stdout, errorJSON{Error: err.Error(), Hint: hint, Exit: code})
		return code
	}
	if !quiet {
		fmt.Fprintf(stderr, "ladder: %v\n", err)
		if hint != "" && !strings.Contains(err.Error(), hint) {
			fmt.Fprintf(stderr, "%s%s.\n", strings.ToUpper(hint[:1]), hint[1:])
		}
	}
	return code
}

// outputIn reads -o/--output from args before cobra parses them, so that
// an error in the arguments themselves is reported in the format asked.
func outputIn(args []string) string {
	for i, a := range args {
		switch {
		case a == "--":
			return formatText
		case (a == "-o" || a == "--output") && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "--output="):
			return strings.TrimPrefix(a, "--output=")
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			return strings.TrimPrefix(strings.TrimPrefix(a, "-o"), "=")
		}
	}
	return formatText
}

// commandPath names the subcommand args select, for the usage hint.
func commandPath(root *cobra.Command, args []string) string {
	c, _, err := root.Find(args)
	if err != nil || c == root {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
}

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "ladder",
		Short: "Plan and perform safe, step-by-step upgrades of replicated services",
		Long: `ladder upgrades a replicated service one supported hop at a time.

It says before anything changes whether an upgrade is supported, why, and
the exact chain of hops; then upgrades a live cluster hop by hop, one
replica at a time, with health gates, waits on the replicated store that
notice a stuck replica in seconds, data migrations, backups, and automatic
repair within a budget. An upgrade that stops resumes where it stopped.

Version rules (SemVer): patch versions may be skipped; minor versions go
one at a time; major versions go one at a time and land on the earliest
minor of the next major; never down.

Exit codes:
  0    done (for check: supported)
  1    failed; a failed upgrade resumes when run again
  2    usage or invalid input
  3    refused by policy
  4    locked by another upgrade
  130  interrupted`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetIn(e.stdin)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: err}
	})
	registerOutput(root, e)
	registerTrust(root, e)
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error { return e.checkOutput() }
	root.AddCommand(commands(e)...)
	groups(root)
	return root
}

// groups makes every command that only groups others (ladder, ladder
// cluster, …) print its help when run alone and refuse an unknown
// subcommand as a usage error.
func groups(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %q for %s", args[0], c.CommandPath())
			}
			return nil
		}
		c.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
	}
	for _, sub := range c.Commands() {
		groups(sub)
	}
}

// exactArgs is cobra.ExactArgs with a usage exit code and a message that
// names what is missing.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErr("%s takes %d arguments (%s), got %d", c.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}
