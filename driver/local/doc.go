// Package local runs a cluster's replicas as processes on this machine.
//
// A cluster lives in a folder, $LADDER_HOME/clusters/NAME: cluster.json (the
// driver record), local.json (replicas, ports, pids), admin-password (0600),
// blobs/ (shared by the replicas), and replicas/ID/ with the replica's data,
// its log (replica.log, appended across restarts) and its pid file.
//
// Replicas are `ladder registry serve` processes of the ladder binary, in a
// session of their own, so they outlive the command that started them. Ports
// are free loopback ports chosen at creation and kept for the cluster's
// life, so a replaced replica keeps its address. A process is only ever
// signalled after checking, through /proc, that it is still the replica it
// was started as: a recycled pid is never touched.
package local
