// Package service holds the services ladder upgrades. A service says what
// a replica runs for a release (driver.Service: program, command line,
// ports, health path) and what the upgrade engine knows of a running
// cluster (upgrade.App: its status under the settled rule, the job that
// migrates its data, how a backup is taken), and which releases exist.
//
// Registry is the reference registry of package registry. The engine and
// the drivers never import this package; the command line wires a service
// to both.
package service
