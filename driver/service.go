package driver

// Service is what replicas run: which program for a release, with which
// arguments, on which ports. A driver places replicas (it chooses ports,
// folders or volumes, host names) and runs what the service describes;
// it knows nothing else about the program.
type Service interface {
	// Name names the service in cluster records and image names:
	// "registry", "etcd".
	Name() string
	// Artifact returns what runs release version on this machine, with
	// the version normalized, or an error wrapping ErrNoArtifact.
	Artifact(version string) (Artifact, error)
	// Ports names the ports every replica listens on. The first serves
	// the API that Replica.URL points at, and HealthPath on it answers
	// once the replica's process serves.
	Ports() []string
	// HealthPath is the HTTP path of Ports()[0] that answers (with any
	// status) once a replica's process serves.
	HealthPath() string
	// Command is a replica's command line after the program.
	Command(a Artifact, p Placement) []string
	// JobCommand is the command line after the program of a one-off job
	// against the cluster whose members are given.
	JobCommand(a Artifact, job Job, members []Member) []string
	// PortConflict reports whether a replica that exited with code, having
	// logged log, could not listen because a port was taken: a driver
	// creating a cluster then chooses other ports.
	PortConflict(code int, log string) bool
}

// Artifact is what runs one release of a service.
type Artifact struct {
	// Version is the release, normalized.
	Version string
	// Binary is the static executable on this machine. Releases may share
	// one (the reference registry's binary runs every release).
	Binary string
	// Program is the executable's name inside an image: "/"+Program.
	Program string
}

// Placement is where a replica runs, as the driver chose it.
type Placement struct {
	Cluster string
	ID      string
	// Listen maps each of the service's ports to the address the replica
	// binds: "127.0.0.1:5001", "0.0.0.0:8080".
	Listen map[string]string
	// Members lists every replica of the cluster, this one included, with
	// the addresses its peers reach it at.
	Members []Member
	// DataDir holds the replica's own data, kept across replacements.
	DataDir string
	// SharedDir is a folder every replica of the cluster shares.
	SharedDir string
	// Secrets maps each secret of the cluster's spec to the path of its
	// file, as the replica sees it.
	Secrets map[string]string
}

// Member is a replica as its peers reach it.
type Member struct {
	ID string
	// Addr maps each of the service's ports to "host:port".
	Addr map[string]string
}

// Self returns the member of the placed replica.
func (p Placement) Self() Member {
	for _, m := range p.Members {
		if m.ID == p.ID {
			return m
		}
	}
	return Member{ID: p.ID}
}

// SecretScoper is implemented by a service whose replicas and jobs each
// need only some of the cluster's secrets (a replica its own key, not its
// peers'). Drivers that copy secrets into a replica's or a job's
// filesystem copy only those; without it, every secret.
type SecretScoper interface {
	// ReplicaSecret reports whether replica id needs the secret name.
	ReplicaSecret(id, name string) bool
	// JobSecret reports whether a one-off job needs the secret name.
	JobSecret(name string) bool
}

// SecureService is implemented by a service whose API may speak HTTPS:
// given the cluster's secrets (name to file), it says which scheme its
// replicas' API serves, "https" or "http".
type SecureService interface {
	APIScheme(secrets map[string]string) string
}

// APIScheme is the scheme of svc's API in a cluster with secrets: what
// svc says if it is a SecureService, else "http". Drivers build
// Replica.URL with it. Their own start checks may still send plain HTTP:
// an HTTPS server answers it (400), which proves the process serves.
func APIScheme(svc Service, secrets map[string]string) string {
	if s, ok := svc.(SecureService); ok {
		return s.APIScheme(secrets)
	}
	return "http"
}
