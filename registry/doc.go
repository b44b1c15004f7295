// Package registry is the reference registry: a small replicated container
// image registry with a release history and real schema migrations, so that
// ladder has something real to upgrade.
//
// A replica (Start, Serve) runs one member of an embedded etcd cluster, a
// client of that member, and an HTTP server: /health, the status and admin
// API under /api/v1/, the web UI at /, and the OCI distribution API under
// /v2/. Blobs live in a folder shared by all replicas; metadata lives in the
// replicated store.
//
// # Store layout
//
// A table is a key prefix of the database "registry": /registry/<table>/.
// Values are JSON. Every write that touches a table also puts the table's
// revision marker /registry/.rev/<table> in the same transaction, so the
// modification revision of that one key is the table's latest revision: a
// replica has a table ready when its member has applied that revision.
//
//	schema  release  layout change (migration From→To)
//	1       1.4.x    repositories keyed by opaque id (/repositories/#<id>);
//	                 manifests keyed by push sequence (/manifests/<repo>#<seq>);
//	                 blobs known globally (/blobs/<digest>)
//	2       2.0.x    1→2 re-keys repositories by name (namespace recorded)
//	3       2.1.x    2→3 builds blob_repository (/blob_repository/<repo>@<digest>)
//	                 from the manifests' blob lists
//	4       2.2/2.3  3→4 backfills pushed_at on every tag row
//	5       3.0.x    4→5 re-keys manifests by digest (/manifests/<repo>@<digest>)
//	6       3.1.x    5→6 backfills size_bytes on every repository row
//	7       3.2.0-rc 6→7 copies the manifest media type onto every tag row
//
// Repository names never contain '#', '@' or ':', so those characters
// separate a repository from the rest of a key unambiguously.
//
// # Invariants
//
//   - The stored schema (/registry/properties/schema.version) only grows, and
//     only Store.Migrate changes it, in the transaction that completes a
//     migration.
//   - A replica refuses to start when the stored schema is newer than its
//     release knows (SchemaTooNewError names the release needed).
//   - Writes use the stored schema's layout and are guarded by a compare on
//     the stored schema, so no write lands in a layout a completed migration
//     has left behind. Reads try the newest layout the release knows and fall
//     back to older layouts while the stored schema is older: a newer release
//     reads an older store, also while a migration is half-way.
//   - A migration is idempotent and batched; every batch commits its rows and
//     the checkpoint in one transaction, so a crash resumes from the last
//     batch. Before it records the new schema it checks its work again and
//     commits only if none of its tables changed meanwhile.
//   - (*embed.Etcd).Close is called exactly once per replica.
package registry
