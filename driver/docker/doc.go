// Package docker runs a cluster's replicas as containers on a Docker Engine.
//
// Images: ladder-SERVICE:VERSION (ladder-registry:2.2.4), one per release,
// built locally FROM scratch by BuildImages (`ladder images build`) from a
// static binary; build metadata in a version is written with '_' in the
// tag. The reference registry's release images share one layer, the
// ladder binary. A service with a binary of its own per release (etcd) runs
// with the build BuildPerRelease instead: each release's image,
// ladder-SERVICE:VERSION-BUILD, is named by the binary it holds and built
// from it the first time a replica of the release starts. No image is
// ever pulled.
//
// A cluster NAME owns, on the engine:
//   - a bridge network ladder-NAME, private to the cluster, that does not
//     masquerade (the replicas cannot reach out through it; it cannot be
//     internal, or it would publish no port);
//   - a volume ladder-NAME-shared that every replica mounts at /shared;
//   - per replica ID, a volume ladder-NAME-ID-data (mounted at /data) and a
//     container ladder-NAME-ID running the service's command line for the
//     replica, its peers reached by container name. The service's ports are
//     8080, 8081, … inside every container, in the service's order.
//
// Every object carries the label ladder.cluster=NAME; containers also carry
// ladder.replica, ladder.release and ladder.api-port. The labels are the
// truth: the driver keeps no state of its own about containers, it asks
// the engine. The replica's API port (the service's first) is published on
// 127.0.0.1 only, on a free port chosen when the cluster is created and kept
// for the cluster's life (a replaced or restarted replica keeps its URL);
// the other ports stay on the private network.
//
// Every container ladder creates (replicas and jobs) runs as user 65532
// (the image's folders belong to it), with a read-only root filesystem
// (its volumes and a small /tmp are writable), all capabilities dropped and
// no-new-privileges.
//
// An adopted cluster (Adopt: containers ladder did not create) keeps its
// containers' names, networks, volumes and ports; the cluster folder's
// docker-adopted.json names each replica's container, and a replaced
// member's new container is labelled ladder.adopted-by=NAME, never
// ladder.cluster, so that no removal by label ever takes what ladder did
// not create. See adopt.go.
//
// On this machine the cluster folder, $LADDER_HOME/clusters/NAME, holds only
// cluster.json (the record) and the cluster's secrets (0600 files), which
// are copied into each container under /run/ladder (a volume of the
// container's own, removed with it) when it is created: only those the
// service says the replica or job needs (driver.SecretScoper).
//
// The engine's API version is negotiated: an engine as old as API 1.41
// (Docker 20.10) works.
package docker
