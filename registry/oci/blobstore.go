package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// BlobStore keeps blob content by digest where every replica reaches it:
// the blob folder (FolderBlobs) or an S3 bucket. Uploads in progress stay
// in the blob folder; only verified content is handed to Put. Blob garbage
// collection is written against this interface, so that it runs on both:
// Walk lists the blobs with the time each was last written or touched,
// Touch marks a blob as just used, Delete removes it.
//
// Implementations must make a blob visible only whole: an interrupted Put
// leaves nothing under the digest.
type BlobStore interface {
	// Stat returns the blob's size and time, or an error wrapping
	// ErrBlobNotFound.
	Stat(ctx context.Context, digest string) (BlobInfo, error)
	// Open returns the blob's content for reading and seeking (Range
	// requests), or an error wrapping ErrBlobNotFound.
	Open(ctx context.Context, digest string) (io.ReadSeekCloser, error)
	// Put stores size bytes from r as digest. r yields an error instead of
	// io.EOF when what it read does not match digest, and Put must then
	// store nothing.
	Put(ctx context.Context, digest string, r io.Reader, size int64) error
	// Delete removes the blob; a blob already gone is not an error.
	Delete(ctx context.Context, digest string) error
	// Touch sets the blob's time to now (a client is about to use it).
	Touch(ctx context.Context, digest string) error
	// Walk calls fn for every blob the store holds.
	Walk(ctx context.Context, fn func(BlobInfo) error) error
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Digest string
	Size   int64
	// Modified is when the blob was written or last touched.
	Modified time.Time
}

// ErrBlobNotFound is what a BlobStore reports for a digest it does not hold.
var ErrBlobNotFound = errors.New("blob not found")

// ErrDigestMismatch is what VerifyingReader yields when the content read
// does not match the digest it promises.
var ErrDigestMismatch = errors.New("content does not match its digest")

// VerifyingReader returns a reader of r that hashes what it reads and, at
// the end, yields ErrDigestMismatch instead of io.EOF unless the content
// matches digest ("sha256:<hex>"). A store that gets an error from its
// reader aborts the write, so a blob never becomes visible with content
// its name does not promise.
func VerifyingReader(r io.Reader, digest string) (io.Reader, error) {
	alg, want, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" {
		return nil, fmt.Errorf("verify %s: unsupported digest", digest)
	}
	return &verifying{r: r, h: sha256.New(), want: want}, nil
}

type verifying struct {
	r    io.Reader
	h    hash.Hash
	want string
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("%w: read sha256:%s", ErrDigestMismatch, got)
		}
	}
	return n, err
}
