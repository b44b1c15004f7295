package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
)

// blobStore is a new cluster's S3 blob store, checked and ready.
type blobStore struct {
	loc  registry.S3Location
	keys registry.S3Keys
	// created: this command created the bucket.
	created bool
}

// prepareBlobStore checks --blob-store and its credentials (file or
// environment) and that the bucket exists, creating it with create.
func prepareBlobStore(ctx context.Context, stderr io.Writer, url, credFile string, create bool) (*blobStore, error) {
	loc, err := registry.ParseS3URL(url)
	if err != nil {
		return nil, usageErr("--blob-store: %w", err)
	}
	keys, err := registry.S3Credentials(credFile)
	if err != nil {
		return nil, usageErr("--blob-credentials: %w", err)
	}
	created, err := registry.EnsureBucket(ctx, loc, keys, create)
	if errors.Is(err, registry.ErrInvalid) {
		return nil, usageErr("%w", err)
	}
	if err != nil {
		return nil, err
	}
	if created {
		fmt.Fprintf(stderr, "  created bucket %s at %s (removed with the cluster)\n", loc.Bucket, loc.Endpoint)
	}
	return &blobStore{loc: loc, keys: keys, created: created}, nil
}

// recordBlobStore writes the blob store into the record of cluster name.
func recordBlobStore(root, name string, bs *blobStore) error {
	rec, err := home.ReadRecord(root, name)
	if err != nil {
		return err
	}
	rec.BlobStore, rec.OwnsBucket = bs.loc.String(), bs.created
	return home.WriteRecord(root, rec)
}

// bucketToRemove returns what removes a cluster's bucket once the
// cluster is destroyed (its keys are read now: they go with the cluster's
// folder), or nil when ladder did not create the bucket.
func bucketToRemove(rec home.Record) (func(context.Context) error, error) {
	if rec.BlobStore == "" || !rec.OwnsBucket {
		return nil, nil
	}
	loc, err := registry.ParseS3URL(rec.BlobStore)
	if err != nil {
		return nil, err
	}
	path, ok := rec.Secrets[service.BlobCredentialsSecret]
	if !ok {
		return nil, fmt.Errorf("cluster %s keeps no %s", rec.Name, service.BlobCredentialsSecret)
	}
	keys, err := registry.S3Credentials(path)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return registry.RemoveBucket(ctx, loc, keys) }, nil
}
