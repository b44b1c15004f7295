package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FolderBlobs is the blob folder as a BlobStore:
// <dir>/<algorithm>/<first two hex>/<hex>. The handler writes it directly
// (an upload is renamed into place); tools such as garbage collection use
// it through the interface, as they use an S3 bucket.
type FolderBlobs struct{ Dir string }

var _ BlobStore = FolderBlobs{}

func (f FolderBlobs) path(digest string) (string, error) {
	d, err := v1.NewHash(digest)
	if err != nil || len(d.Hex) < 3 {
		return "", fmt.Errorf("invalid digest %q", digest)
	}
	return filepath.Join(f.Dir, d.Algorithm, d.Hex[:2], d.Hex), nil
}

func notExist(digest string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrBlobNotFound, digest)
	}
	return err
}

// Stat implements BlobStore.
func (f FolderBlobs) Stat(_ context.Context, digest string) (BlobInfo, error) {
	p, err := f.path(digest)
	if err != nil {
		return BlobInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return BlobInfo{}, notExist(digest, err)
	}
	return BlobInfo{Digest: digest, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// Open implements BlobStore.
func (f FolderBlobs) Open(_ context.Context, digest string) (io.ReadSeekCloser, error) {
	p, err := f.path(digest)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, notExist(digest, err)
	}
	return fh, nil
}

// Put implements BlobStore: written beside its place, synced, renamed.
func (f FolderBlobs) Put(_ context.Context, digest string, r io.Reader, size int64) error {
	p, err := f.path(digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create blob folder: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return fmt.Errorf("put %s: %w", digest, err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, r)
	if err == nil && n != size {
		err = fmt.Errorf("read %d bytes, want %d", n, size)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", digest, err)
	}
	syncDir(filepath.Dir(p))
	return nil
}

// Delete implements BlobStore.
func (f FolderBlobs) Delete(_ context.Context, digest string) error {
	p, err := f.path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", digest, err)
	}
	return nil
}

// Touch implements BlobStore.
func (f FolderBlobs) Touch(_ context.Context, digest string) error {
	p, err := f.path(digest)
	if err != nil {
		return err
	}
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil {
		return notExist(digest, err)
	}
	return nil
}

// Walk implements BlobStore; uploads in progress are not blobs.
func (f FolderBlobs) Walk(ctx context.Context, fn func(BlobInfo) error) error {
	algs, err := os.ReadDir(f.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, alg := range algs {
		if !alg.IsDir() || alg.Name() == "uploads" {
			continue
		}
		err := filepath.WalkDir(filepath.Join(f.Dir, alg.Name()), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return nil // gone meanwhile
			}
			return fn(BlobInfo{Digest: alg.Name() + ":" + d.Name(), Size: fi.Size(), Modified: fi.ModTime()})
		})
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
	}
	return nil
}
