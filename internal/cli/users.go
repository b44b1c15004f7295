package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
)

func newUsersCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "users",
		Short: "Manage who may pull, push and delete on a cluster's registry",
		Long: `Users log in to the registry (docker login, skopeo, crane, regctl) and get a
short-lived token that every replica accepts. Each user has a role:

  read-only    pull, list tags and the catalog
  read-write   also push
  admin        also delete, manage users, collect garbage, take backups

"admin" is the built-in administrator: its password is the cluster's admin
password (the file 'ladder cluster create' wrote). Users are kept in the
cluster's replicated store; passwords are stored as bcrypt hashes.

Passwords are never taken on the command line: type them at the prompt, or
pipe them with --password-stdin.

Without logging in, anyone may pull unless anonymous pulls are turned off
(ladder users anonymous-pull off).`,
		Example: `  ladder users add ci --role read-write            # asks for the password twice
  printf '%s\n' "$PW" | ladder users add ci --role read-write --password-stdin
  ladder users list
  ladder users passwd ci
  ladder users role ci read-only
  ladder users remove ci
  ladder users anonymous-pull off`,
	}
	c.AddCommand(newUsersAddCmd(e), newUsersListCmd(e), newUsersRemoveCmd(e), newUsersPasswdCmd(e),
		newUsersRoleCmd(e), newUsersAnonymousCmd(e))
	return c
}

func newUsersAddCmd(e *env) *cobra.Command {
	var (
		cf        clusterFlag
		role      string
		pwFromStd bool
	)
	c := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user with a role",
		Long: `Add creates a user who logs in to every replica of the cluster. The role
says what the user may do: read-only (pull), read-write (pull and push) or
admin (also delete, manage users, collect garbage). The password (at least
8 characters) is asked twice on a terminal, or read from the first line of
standard input with --password-stdin; it is stored as a bcrypt hash.`,
		Example: `  ladder users add ci --role read-write
  printf '%s\n' "$CI_PASSWORD" | ladder users add ci --role read-write --password-stdin
  echo "$CI_PASSWORD" | docker login 127.0.0.1:PORT -u ci --password-stdin`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := registry.ValidateUser(args[0], role, ""); err != nil {
				return usageErr("%v", err)
			}
			pw, err := readPassword(e, "password for "+args[0], pwFromStd, true)
			if err != nil {
				return err
			}
			if err := registry.ValidateUser(args[0], role, pw); err != nil {
				return usageErr("%v", err)
			}
			var u registry.User
			err = onReplica(e, cf.name, func(ac registry.AdminClient) error {
				u, err = ac.AddUser(e.ctx, args[0], role, pw)
				return err
			})
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, u)
			}
			fmt.Fprintf(e.stdout, "user %s added (%s)\n", u.Name, u.Role)
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&role, "role", registry.RoleReadOnly, "role: "+strings.Join(registry.Roles(), ", "))
	c.Flags().BoolVar(&pwFromStd, "password-stdin", false, "read the password from the first line of standard input")
	_ = c.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(registry.Roles(), cobra.ShellCompDirectiveNoFileComp))
	return c
}

func newUsersListCmd(e *env) *cobra.Command {
	var cf clusterFlag
	c := &cobra.Command{
		Use:   "list",
		Short: "List the users and their roles",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			var users []registry.User
			err := onReplica(e, cf.name, func(ac registry.AdminClient) (err error) {
				users, err = ac.Users(e.ctx)
				return err
			})
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, users)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tROLE\tCREATED")
			for _, u := range users {
				created := u.Created.Local().Format(time.DateTime)
				if u.BuiltIn {
					created = "built in (the cluster's admin password)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, created)
			}
			return tw.Flush()
		},
	}
	cf.register(c)
	return c
}

func newUsersRemoveCmd(e *env) *cobra.Command {
	var cf clusterFlag
	c := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user (tokens already issued expire within minutes)",
		Args:  exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := registry.ValidateUser(args[0], "", ""); err != nil {
				return usageErr("%v", err)
			}
			err := onReplica(e, cf.name, func(ac registry.AdminClient) error { return ac.RemoveUser(e.ctx, args[0]) })
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, map[string]string{"removed": args[0]})
			}
			fmt.Fprintf(e.stdout, "user %s removed\n", args[0])
			return nil
		},
	}
	cf.register(c)
	return c
}

func newUsersPasswdCmd(e *env) *cobra.Command {
	var (
		cf        clusterFlag
		pwFromStd bool
	)
	c := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password",
		Long: `Passwd sets a user's password. Its saved logins (refresh tokens) stay good
until they expire or the cluster's key is rotated (ladder cluster rotate-key).
The built-in admin's password is the cluster's admin password and cannot be
changed here.`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := registry.ValidateUser(args[0], "", ""); err != nil {
				return usageErr("%v", err)
			}
			pw, err := readPassword(e, "new password for "+args[0], pwFromStd, true)
			if err != nil {
				return err
			}
			if err := registry.ValidateUser(args[0], "", pw); err != nil {
				return usageErr("%v", err)
			}
			var u registry.User
			err = onReplica(e, cf.name, func(ac registry.AdminClient) (err error) {
				u, err = ac.ChangeUser(e.ctx, args[0], "", pw)
				return err
			})
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, u)
			}
			fmt.Fprintf(e.stdout, "password of %s changed\n", u.Name)
			return nil
		},
	}
	cf.register(c)
	c.Flags().BoolVar(&pwFromStd, "password-stdin", false, "read the password from the first line of standard input")
	return c
}

func newUsersRoleCmd(e *env) *cobra.Command {
	var cf clusterFlag
	c := &cobra.Command{
		Use:       "role NAME ROLE",
		Short:     "Change a user's role (" + strings.Join(registry.Roles(), ", ") + ")",
		Args:      exactArgs("NAME", "ROLE"),
		ValidArgs: registry.Roles(),
		RunE: func(c *cobra.Command, args []string) error {
			if err := registry.ValidateUser(args[0], args[1], ""); err != nil {
				return usageErr("%v", err)
			}
			var u registry.User
			err := onReplica(e, cf.name, func(ac registry.AdminClient) (err error) {
				u, err = ac.ChangeUser(e.ctx, args[0], args[1], "")
				return err
			})
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, u)
			}
			fmt.Fprintf(e.stdout, "user %s is now %s\n", u.Name, u.Role)
			return nil
		},
	}
	cf.register(c)
	return c
}

func newUsersAnonymousCmd(e *env) *cobra.Command {
	var cf clusterFlag
	c := &cobra.Command{
		Use:   "anonymous-pull on|off",
		Short: "Allow or refuse pulls without a login (default: allowed)",
		Long: `With anonymous pulls on (the default), anyone who can reach a replica may
pull images and list tags and the catalog without logging in; pushes and
deletes always need a user. Every replica applies a change within 10 seconds.`,
		Args:      exactArgs("on|off"),
		ValidArgs: []string{"on", "off"},
		RunE: func(c *cobra.Command, args []string) error {
			var on bool
			switch args[0] {
			case "on":
				on = true
			case "off":
			default:
				return usageErr("invalid %q: use on or off", args[0])
			}
			err := onReplica(e, cf.name, func(ac registry.AdminClient) error {
				return ac.SetAuthSettings(e.ctx, registry.AuthSettings{AnonymousPull: on})
			})
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, registry.AuthSettings{AnonymousPull: on})
			}
			fmt.Fprintf(e.stdout, "anonymous pulls %s\n", map[bool]string{true: "allowed", false: "refused"}[on])
			return nil
		},
	}
	cf.register(c)
	return c
}

// adminHTTP calls the replicas' admin API, trusting them with tc; bcrypt
// and the store make a call take a moment, a collection longer.
func adminHTTP(tc *tls.Config) *http.Client { return pki.HTTPClient(tc, 5*time.Minute) }

// onReplica runs f against the first replica of the cluster that answers,
// as the cluster's admin.
func onReplica(e *env, cluster string, f func(registry.AdminClient) error) error {
	d, rec, err := openCluster(cluster)
	if err != nil {
		return err
	}
	if rec.Service != service.RegistryName {
		return usageErr("cluster %s runs %s: users, keys and gc are the registry's", cluster, rec.Service)
	}
	pw, err := rec.Secret(service.AdminPasswordSecret)
	if err != nil {
		return withHint(ExitFailed, err, "register the cluster's admin password with: ladder cluster connect --admin-password-file FILE")
	}
	tc, err := e.clusterTLS(rec)
	if err != nil {
		return err
	}
	return onReplicaOf(e.ctx, d.Replicas, pw, adminHTTP(tc), f)
}

// onReplicaOf tries f on each running replica in turn while the replica
// cannot be reached.
func onReplicaOf(ctx context.Context, list func(context.Context) ([]driver.Replica, error), pw string, hc *http.Client, f func(registry.AdminClient) error) error {
	reps, err := list(ctx)
	if err != nil {
		return err
	}
	var last error
	for _, r := range reps {
		if !r.Running || r.URL == "" {
			continue
		}
		err := f(registry.AdminClient{HC: hc, Base: r.URL, Password: pw})
		var ne interface{ Timeout() bool }
		if err == nil || !errors.As(err, &ne) && !strings.Contains(err.Error(), "connection refused") &&
			!strings.Contains(err.Error(), "503") {
			return err
		}
		last = err
	}
	if last == nil {
		last = errors.New("no replica is running (see: ladder cluster status)")
	}
	return last
}

// readPassword reads a password: the first line of standard input with
// fromStdin, else from the terminal (asked twice when confirm).
func readPassword(e *env, what string, fromStdin, confirm bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from standard input: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", usageErr("no password on standard input")
		}
		return pw, nil
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageErr("no terminal to ask for the %s: pipe it with --password-stdin", what)
	}
	fmt.Fprintf(e.stderr, "%s: ", what)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if confirm {
		fmt.Fprintf(e.stderr, "again: ")
		b2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(b) != string(b2) {
			return "", usageErr("the two passwords differ")
		}
	}
	if len(b) == 0 {
		return "", usageErr("empty password")
	}
	return string(b), nil
}

// recentFailures gathers the failed logins every replica remembers, the
// newest last, at most n from the last day.
func recentFailures(ctx context.Context, list func(context.Context) ([]driver.Replica, error), pw string, hc *http.Client, n int) []registry.LoginFailure {
	reps, err := list(ctx)
	if err != nil {
		return nil
	}
	var all []registry.LoginFailure
	since := time.Now().Add(-24 * time.Hour)
	for _, r := range reps {
		if !r.Running || r.URL == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		got, err := registry.AdminClient{HC: hc, Base: r.URL, Password: pw}.Failures(cctx)
		cancel()
		if err != nil {
			continue
		}
		for _, f := range got {
			if f.Time.After(since) {
				all = append(all, f)
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	if len(all) > n {
		all = slices.Clone(all[len(all)-n:])
	}
	return all
}

// printFailures writes the recent failed logins.
func printFailures(w io.Writer, fs []registry.LoginFailure) {
	if len(fs) == 0 {
		fmt.Fprintln(w, "failed logins: none in the last 24h")
		return
	}
	fmt.Fprintf(w, "failed logins (last 24h, newest last):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIME\tREPLICA\tUSER\tFROM\tREASON")
	for _, f := range fs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.Time.Local().Format(time.DateTime), f.Replica, f.User, f.Remote, f.Reason)
	}
	_ = tw.Flush()
}
