// Package local runs a cluster's replicas as processes on this machine.
//
// A cluster lives in a folder, $LADDER_HOME/clusters/NAME: cluster.json (the
// record), local.json (replicas, their ports by name, pids and process start
// times), the cluster's secrets (0600 files, such as the registry's
// admin-password), shared/ (a folder every replica shares; the registry
// keeps its blobs there), and replicas/ID/ with the replica's data, its log
// (replica.log, appended across restarts) and its pid file.
//
// Replicas are processes of the service's program for their release (for
// the reference registry, `ladder registry serve`), run with the command
// line the service gives for the replica's placement, in a session of their
// own so they outlive the command that started them. Ports are free
// loopback ports chosen at creation and kept for the cluster's life, so a
// replaced replica keeps its address. A process is known by its pid and its
// start time (/proc/PID/stat), set at fork: a recycled pid is never taken
// for the replica nor signalled, and a child read between fork and exec is
// already the replica.
package local
