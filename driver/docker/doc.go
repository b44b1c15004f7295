// Package docker runs a cluster's replicas as containers on a Docker Engine.
//
// Images: ladder-registry:VERSION, one per release, built locally FROM
// scratch by BuildImages (`ladder images build`) from the static ladder
// binary; build metadata in a version is written with '_' in the tag. All
// release images share one layer, the binary. No image is ever pulled.
//
// A cluster NAME owns, on the engine:
//   - a bridge network ladder-NAME, private to the cluster;
//   - a volume ladder-NAME-blobs shared by the replicas (mounted at /blobs);
//   - per replica ID, a volume ladder-NAME-ID-data (mounted at /data) and a
//     container ladder-NAME-ID running `/ladder registry serve` with the
//     replica's release, advertising its container name to its peers.
//
// Every object carries the label ladder.cluster=NAME; containers also carry
// ladder.replica, ladder.release and ladder.http-port. The labels are the
// truth: the driver keeps no state of its own about containers, it asks
// the engine. The replica's HTTP port is published on 127.0.0.1 only, on a
// free port chosen when the cluster is created and kept for the cluster's
// life (a replaced or restarted replica keeps its URL); the store's peer
// and client ports stay on the private network.
//
// On this machine the cluster folder, $LADDER_HOME/clusters/NAME, holds only
// cluster.json (the driver record) and admin-password (0600), which is
// copied into each container when it is created.
//
// The engine's API version is negotiated: an engine as old as API 1.41
// (Docker 20.10) works.
package docker
