// Package oci serves the OCI Distribution API (/v2/) of the reference
// registry: pull, push (monolithic, chunked, streamed, cross-repository
// mount), manifests by tag and digest (OCI image manifest and index, Docker
// schema 2 manifest and manifest list), tag and repository listings with
// pagination, and the referrers API.
//
// The handler keeps no state of its own. Metadata (repositories, manifests,
// tags, blob links) lives behind the Metadata interface, implemented by the
// replicated store in package registry and, for tests, by MemoryMetadata.
// Blob bytes live in a folder shared by all replicas:
//
//	<BlobDir>/<algorithm>/<first two hex>/<hex>   content-addressed blobs
//	<BlobDir>/uploads/<id>                        uploads in progress
//
// Invariants:
//   - A blob file exists only with the content its name promises: uploads are
//     hashed, fsynced and renamed into place only when the digest matches.
//   - A blob is visible in a repository only once it is linked there; a
//     manifest is accepted only when every blob and child manifest it names
//     (except non-distributable layers) is present in that repository.
//   - Bad input changes nothing: a malformed or oversized manifest, a digest
//     mismatch or an interrupted chunk leaves the store as it was (a chunk is
//     cut back, so the upload can be resumed from its last good offset).
//   - An upload is state in BlobDir only, so any replica sharing BlobDir can
//     continue it; work on one upload is serialized with a file lock.
//   - Pulls are anonymous; pushes and deletes need basic-auth credentials that
//     Options.CheckAdmin accepts.
//
// Mount the handler at "/v2/" without stripping the prefix.
package oci
