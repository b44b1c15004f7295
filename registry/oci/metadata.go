package oci

import (
	"context"
	"errors"
)

// Manifest is a stored manifest (image manifest or index, OCI or Docker media type).
type Manifest struct {
	Digest       string // "sha256:..."
	MediaType    string
	Size         int64
	Content      []byte   // exact bytes as pushed
	Blobs        []string // digests of config+layers (image) — the blob↔repository links
	Children     []string // digests of child manifests (index)
	Subject      string   // digest of subject manifest, for referrers ("" if none)
	ArtifactType string
}

// ErrNotFound is returned (wrapped) for unknown repo/tag/manifest.
var ErrNotFound = errors.New("not found")

// Metadata is what the OCI handlers need from the replicated store.
type Metadata interface {
	// Repositories lists repository names after `last` (exclusive), at most n (n<=0: all), sorted.
	Repositories(ctx context.Context, last string, n int) ([]string, error)
	// LinkBlob records that blob dgst (size bytes) belongs to repo, creating repo if needed.
	LinkBlob(ctx context.Context, repo, dgst string, size int64) error
	// BlobLinked reports whether dgst is linked to repo.
	BlobLinked(ctx context.Context, repo, dgst string) (bool, error)
	// PutManifest stores m in repo atomically with its blob links, the tag (if tag != ""),
	// the repository row and an event row. Creates repo if needed. Idempotent.
	PutManifest(ctx context.Context, repo string, m Manifest, tag string) error
	GetManifest(ctx context.Context, repo, dgst string) (Manifest, error)
	// ResolveTag returns the digest tag points to in repo.
	ResolveTag(ctx context.Context, repo, tag string) (string, error)
	// Tags lists tags of repo after `last` (exclusive), at most n (n<=0: all), sorted.
	Tags(ctx context.Context, repo, last string, n int) ([]string, error)
	DeleteManifest(ctx context.Context, repo, dgst string) error // also deletes tags pointing to it
	DeleteTag(ctx context.Context, repo, tag string) error
	// Referrers lists manifests in repo whose Subject is dgst.
	Referrers(ctx context.Context, repo, dgst string) ([]Manifest, error)
}

// BlobUnlinker is an optional capability of a Metadata: removing the link
// between a blob and a repository. When the Metadata implements it, DELETE
// /v2/<name>/blobs/<digest> unlinks the blob from that repository (the file
// stays: other repositories may share it); otherwise the handler answers 405
// UNSUPPORTED. UnlinkBlob returns ErrNotFound (wrapped) when dgst is not
// linked to repo.
type BlobUnlinker interface {
	UnlinkBlob(ctx context.Context, repo, dgst string) error
}

// BlobReferencer is an optional capability of a Metadata: finding a
// manifest of repo that references blob dgst. When the Metadata implements
// it, deleting a blob a manifest still references is refused (409 DENIED)
// until the manifest is deleted. It returns the manifest's digest, or ""
// when none references the blob.
type BlobReferencer interface {
	BlobReferenced(ctx context.Context, repo, dgst string) (string, error)
}
