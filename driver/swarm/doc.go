// Package swarm runs a cluster's replicas as Docker Swarm services, one
// service of one task per replica, so that replicas can live on different
// machines of a swarm.
//
// Images are the docker driver's (ladder-SERVICE:TAG-BUILD, built FROM
// scratch by `ladder images build`): Swarm runs them without a registry,
// but every node that runs a replica must hold the image of its release.
//
// A cluster NAME owns, on the swarm:
//   - an encrypted overlay network ladder-NAME for peer traffic, on which a
//     replica's peers reach it by its service name (DNS round robin, no
//     virtual IP);
//   - a Swarm secret ladder-NAME-SECRET per secret of the spec, mounted in
//     each task at /run/secrets/SECRET (mode 0400);
//   - per replica ID, a service ladder-NAME-ID of one task (--replicas 1),
//     constrained to one node (by hostname, or by a node label), with the
//     fixed hostname ladder-NAME-ID, a named volume ladder-NAME-ID-data at
//     /data and a volume ladder-NAME-shared at /shared, both created by
//     the engine of the node that runs the task. The service's ports are
//     8080, 8081, … inside every task; the first (the API) is published in
//     host mode on the task's node, on a port chosen when the cluster is
//     created and kept for its life (the routing mesh is not used).
//
// Replace updates the service's image with stop-first ordering (a data
// volume cannot be shared by an old and a new store member) and waits for
// the new task to answer HTTP; if the task fails, or never answers, the
// service is rolled back to its previous spec. Health is ladder's: no
// Docker HEALTHCHECK is set, because the engine's own checks kill busy but
// healthy tasks. Restart forces a new task of the same spec.
//
// Every object carries the label ladder.cluster=NAME; services also carry
// ladder.replica, ladder.release, ladder.api-port and ladder.node. The
// engine is the truth: the driver keeps no state of its own about tasks.
//
// The engine ladder talks to must be a manager of the swarm. Freeze, Thaw
// and Kill act on the task's container and work only for tasks on that
// manager's node. Volumes live on the node that ran the task: Destroy
// removes those on the manager's node; on other nodes they stay until
// removed there (docker volume prune --filter label=ladder.cluster=NAME).
// A published port is chosen free on the manager's machine.
package swarm
