// Package pki is a cluster's trust: its certificate authority, the
// certificates it issues to replicas and to ladder, and the one place that
// builds the TLS configuration and HTTP client every part of ladder uses to
// talk to a cluster.
//
// A cluster's CA is an ECDSA P-256 key and a self-signed certificate made
// by `ladder cluster create`; its key stays in the cluster's folder (0600)
// and is never given to a replica. Every replica gets a certificate of its
// own (server and client use: it serves the API and the store's ports, and
// dials its peers with it), and ladder gets a client certificate, the only
// other key that opens the store. Clients verify against the cluster's CA
// by default; skipping verification is an explicit choice that warns.
package pki
