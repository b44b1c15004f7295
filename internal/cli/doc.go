// Package cli is ladder's command line: one file per command, an options
// struct per command, text and JSON printers. It owns the terminal; the
// packages it calls log through a *slog.Logger and never print.
//
// Exit codes (documented in README.md and `ladder --help`):
//
//	0   done (or supported, for check)
//	1   failed; an upgrade that failed is resumable by running it again
//	2   usage or invalid input
//	3   refused by policy
//	4   locked by another upgrade
//	130 interrupted
package cli
