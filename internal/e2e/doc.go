// Package e2e tests the ladder binary end to end against real local
// clusters: replica processes, the replicated store, the OCI API, and
// `ladder upgrade` killed, frozen out and resumed. Its tests start real
// processes under a temporary LADDER_HOME and remove them when they end.
package e2e
