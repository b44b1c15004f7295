package registry

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/ladder-dev/ladder/registry/oci"
)

// S3 blob storage: every finished blob is one object,
// <prefix>blobs/<algorithm>/<first two hex>/<hex>, in a bucket of an
// S3-compatible service that every replica reaches. A blob is written with
// one PUT, or a multipart upload for blobs of S3PartSize and more, from a
// reader that checks the digest as it goes: a mismatch fails the request,
// the service discards the object, and no blob becomes visible with
// content its name does not promise.

// S3PartSize is the part size of multipart uploads; blobs smaller than it
// go in one request.
const S3PartSize = 16 << 20

// S3Location is where an S3 blob store lives, as given by
// s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION.
type S3Location struct {
	Bucket string
	// Prefix is prepended to every key ("" or ending in "/").
	Prefix string
	// Endpoint is the service's host:port; Secure is true for https.
	Endpoint string
	Secure   bool
	Region   string
}

// ParseS3URL parses s3://BUCKET[/PREFIX]?endpoint=http(s)://HOST:PORT&region=R.
// Credentials never go in the URL: they come from a file or the
// environment (S3Credentials).
func ParseS3URL(raw string) (S3Location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return S3Location{}, fmt.Errorf("%w: blob store %q: %v", ErrInvalid, raw, err)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return S3Location{}, fmt.Errorf("%w: blob store %q: want s3://BUCKET?endpoint=http(s)://HOST:PORT&region=REGION", ErrInvalid, raw)
	}
	if u.User != nil {
		return S3Location{}, fmt.Errorf("%w: blob store URL carries credentials: give them in a file (--blob-credentials) or the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)", ErrInvalid)
	}
	loc := S3Location{Bucket: u.Host, Region: u.Query().Get("region")}
	if p := strings.Trim(u.Path, "/"); p != "" {
		loc.Prefix = p + "/"
	}
	ep := u.Query().Get("endpoint")
	if ep == "" {
		ep = "https://s3.amazonaws.com"
	}
	eu, err := url.Parse(ep)
	if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Hostname() == "" {
		return S3Location{}, fmt.Errorf("%w: blob store endpoint %q: want http(s)://HOST[:PORT]", ErrInvalid, ep)
	}
	loc.Endpoint, loc.Secure = eu.Host, eu.Scheme == "https"
	for k := range u.Query() {
		if k != "endpoint" && k != "region" {
			return S3Location{}, fmt.Errorf("%w: blob store URL: unknown parameter %q (use endpoint and region)", ErrInvalid, k)
		}
	}
	return loc, nil
}

// String is the location as a URL, without credentials.
func (l S3Location) String() string {
	scheme := "http"
	if l.Secure {
		scheme = "https"
	}
	q := url.Values{"endpoint": {scheme + "://" + l.Endpoint}}
	if l.Region != "" {
		q.Set("region", l.Region)
	}
	return "s3://" + l.Bucket + "/" + strings.TrimSuffix(l.Prefix, "/") + "?" + q.Encode()
}

// S3Keys are the credentials of an S3 blob store.
type S3Keys struct {
	AccessKeyID     string
	SecretAccessKey string
}

// S3Credentials reads the keys from file, if given, else from the
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). The file holds
// AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines and must be
// readable by its owner only. No error repeats a key.
func S3Credentials(file string) (S3Keys, error) {
	var k S3Keys
	if file == "" {
		k = S3Keys{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}
		if k.AccessKeyID == "" || k.SecretAccessKey == "" {
			return k, fmt.Errorf("%w: no S3 credentials: give a file with --blob-credentials, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ErrInvalid)
		}
		return k, nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return k, fmt.Errorf("%w: S3 credentials: %v", ErrInvalid, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return k, fmt.Errorf("%w: S3 credentials file %s is readable by others (mode %v): chmod 600 %s", ErrInvalid, file, fi.Mode().Perm(), file)
	}
	f, err := os.Open(file)
	if err != nil {
		return k, fmt.Errorf("%w: S3 credentials: %v", ErrInvalid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		switch strings.TrimSpace(key) {
		case "AWS_ACCESS_KEY_ID", "access_key_id", "aws_access_key_id":
			k.AccessKeyID = strings.TrimSpace(val)
		case "AWS_SECRET_ACCESS_KEY", "secret_access_key", "aws_secret_access_key":
			k.SecretAccessKey = strings.TrimSpace(val)
		default:
			if ok {
				return k, fmt.Errorf("%w: S3 credentials file %s: unknown key %q (want AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", ErrInvalid, file, strings.TrimSpace(key))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return k, fmt.Errorf("%w: S3 credentials file %s: %v", ErrInvalid, file, err)
	}
	if k.AccessKeyID == "" || k.SecretAccessKey == "" {
		return k, fmt.Errorf("%w: S3 credentials file %s: want both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ErrInvalid, file)
	}
	return k, nil
}

// S3BlobStore is an oci.BlobStore in an S3 bucket.
type S3BlobStore struct {
	loc S3Location
	c   *minio.Client
}

var _ oci.BlobStore = (*S3BlobStore)(nil)

// NewS3BlobStore connects to the bucket at loc with keys. It checks that
// the bucket exists.
func NewS3BlobStore(ctx context.Context, loc S3Location, keys S3Keys) (*S3BlobStore, error) {
	c, err := s3Client(loc, keys)
	if err != nil {
		return nil, err
	}
	ok, err := c.BucketExists(ctx, loc.Bucket)
	if err != nil {
		return nil, fmt.Errorf("connect to blob store %s: %w", loc, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: blob store %s: bucket %s does not exist (create it first)", ErrInvalid, loc, loc.Bucket)
	}
	return &S3BlobStore{loc: loc, c: c}, nil
}

// Client is the S3 client, for tests and tools (bucket creation, listing).
func (s *S3BlobStore) Client() *minio.Client { return s.c }

func (s *S3BlobStore) key(digest string) (string, error) {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok || len(hex) < 3 || strings.ContainsAny(digest, "/.") {
		return "", fmt.Errorf("invalid digest %q", digest)
	}
	return s.loc.Prefix + path.Join("blobs", alg, hex[:2], hex), nil
}

func notFound(err error) bool {
	return minio.ToErrorResponse(err).Code == minio.NoSuchKey
}

// Stat implements oci.BlobStore.
func (s *S3BlobStore) Stat(ctx context.Context, digest string) (oci.BlobInfo, error) {
	key, err := s.key(digest)
	if err != nil {
		return oci.BlobInfo{}, err
	}
	info, err := s.c.StatObject(ctx, s.loc.Bucket, key, minio.StatObjectOptions{})
	if notFound(err) {
		return oci.BlobInfo{}, fmt.Errorf("%w: %s", oci.ErrBlobNotFound, digest)
	}
	if err != nil {
		return oci.BlobInfo{}, fmt.Errorf("stat %s in the blob store: %w", digest, err)
	}
	bi := oci.BlobInfo{Digest: digest, Size: info.Size, Modified: info.LastModified}
	if t := s.touched(ctx, digest); t.After(bi.Modified) {
		bi.Modified = t
	}
	return bi, nil
}

// Touch implements oci.BlobStore with an empty marker object,
// <prefix>touched/<algorithm>/<first two hex>/<hex>, written now: S3 has no
// way to renew an object's time that every implementation honours (a copy
// onto itself does on AWS, not everywhere), and a marker is one small PUT
// whatever the blob's size. A blob's time is the later of the two.
func (s *S3BlobStore) Touch(ctx context.Context, digest string) error {
	if _, err := s.Stat(ctx, digest); err != nil {
		return err
	}
	key, err := s.markerKey(digest)
	if err != nil {
		return err
	}
	if _, err := s.c.PutObject(ctx, s.loc.Bucket, key, strings.NewReader(""), 0, minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("touch %s in the blob store: %w", digest, err)
	}
	return nil
}

func (s *S3BlobStore) markerKey(digest string) (string, error) {
	key, err := s.key(digest)
	if err != nil {
		return "", err
	}
	return s.loc.Prefix + "touched/" + strings.TrimPrefix(key, s.loc.Prefix+"blobs/"), nil
}

// touched returns when the blob was last touched (zero if never).
func (s *S3BlobStore) touched(ctx context.Context, digest string) time.Time {
	key, err := s.markerKey(digest)
	if err != nil {
		return time.Time{}
	}
	info, err := s.c.StatObject(ctx, s.loc.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return time.Time{}
	}
	return info.LastModified
}

// Open implements oci.BlobStore. The object is read lazily, with ranged
// GETs as the reader seeks.
func (s *S3BlobStore) Open(ctx context.Context, digest string) (io.ReadSeekCloser, error) {
	key, err := s.key(digest)
	if err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.loc.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("open %s in the blob store: %w", digest, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if notFound(err) {
			return nil, fmt.Errorf("%w: %s", oci.ErrBlobNotFound, digest)
		}
		return nil, fmt.Errorf("open %s in the blob store: %w", digest, err)
	}
	return obj, nil
}

// Put implements oci.BlobStore: one PUT below S3PartSize, a multipart
// upload (aborted on any error, the digest check included) above.
func (s *S3BlobStore) Put(ctx context.Context, digest string, r io.Reader, size int64) error {
	key, err := s.key(digest)
	if err != nil {
		return err
	}
	_, err = s.c.PutObject(ctx, s.loc.Bucket, key, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream", PartSize: S3PartSize})
	if err != nil {
		return fmt.Errorf("put %s in the blob store: %w", digest, err)
	}
	return nil
}

// Delete implements oci.BlobStore.
func (s *S3BlobStore) Delete(ctx context.Context, digest string) error {
	key, err := s.key(digest)
	if err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.loc.Bucket, key, minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
		return fmt.Errorf("delete %s from the blob store: %w", digest, err)
	}
	marker, _ := s.markerKey(digest)
	if err := s.c.RemoveObject(ctx, s.loc.Bucket, marker, minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
		return fmt.Errorf("delete %s from the blob store: %w", digest, err)
	}
	return nil
}

// Walk implements oci.BlobStore: the blobs, each with the later of its
// own time and its touch marker's.
func (s *S3BlobStore) Walk(ctx context.Context, fn func(oci.BlobInfo) error) error {
	touched := map[string]time.Time{}
	if err := s.list(ctx, "touched/", func(digest string, _ int64, t time.Time) error {
		touched[digest] = t
		return nil
	}); err != nil {
		return err
	}
	return s.list(ctx, "blobs/", func(digest string, size int64, t time.Time) error {
		if tt := touched[digest]; tt.After(t) {
			t = tt
		}
		return fn(oci.BlobInfo{Digest: digest, Size: size, Modified: t})
	})
}

// list calls fn for every object under prefix/<algorithm>/<xx>/<hex>.
func (s *S3BlobStore) list(ctx context.Context, sub string, fn func(digest string, size int64, t time.Time) error) error {
	prefix := s.loc.Prefix + sub
	for obj := range s.c.ListObjects(ctx, s.loc.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("list the blob store: %w", obj.Err)
		}
		parts := strings.Split(strings.TrimPrefix(obj.Key, prefix), "/")
		if len(parts) != 3 {
			continue
		}
		if err := fn(parts[0]+":"+parts[2], obj.Size, obj.LastModified); err != nil {
			return err
		}
	}
	return nil
}

// s3Client connects to the service at loc with keys.
func s3Client(loc S3Location, keys S3Keys) (*minio.Client, error) {
	c, err := minio.New(loc.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(keys.AccessKeyID, keys.SecretAccessKey, ""),
		Secure:       loc.Secure,
		Region:       loc.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to blob store %s: %w", loc, err)
	}
	return c, nil
}

// EnsureBucket checks that loc's bucket exists and, with create, creates
// it when it does not. It reports whether it created the bucket.
func EnsureBucket(ctx context.Context, loc S3Location, keys S3Keys, create bool) (bool, error) {
	c, err := s3Client(loc, keys)
	if err != nil {
		return false, err
	}
	ok, err := c.BucketExists(ctx, loc.Bucket)
	if err != nil {
		return false, fmt.Errorf("check bucket %s at %s: %w", loc.Bucket, loc.Endpoint, err)
	}
	if ok {
		return false, nil
	}
	if !create {
		return false, fmt.Errorf("%w: bucket %s does not exist at %s: create it, or let ladder create it (and remove it with the cluster) with --create-bucket",
			ErrInvalid, loc.Bucket, loc.Endpoint)
	}
	if err := c.MakeBucket(ctx, loc.Bucket, minio.MakeBucketOptions{Region: loc.Region}); err != nil {
		return false, fmt.Errorf("create bucket %s at %s: %w", loc.Bucket, loc.Endpoint, err)
	}
	return true, nil
}

// RemoveBucket deletes every object of loc's bucket, then the bucket. A
// bucket already gone is not an error.
func RemoveBucket(ctx context.Context, loc S3Location, keys S3Keys) error {
	c, err := s3Client(loc, keys)
	if err != nil {
		return err
	}
	if ok, err := c.BucketExists(ctx, loc.Bucket); err != nil {
		return fmt.Errorf("check bucket %s: %w", loc.Bucket, err)
	} else if !ok {
		return nil
	}
	objs := c.ListObjects(ctx, loc.Bucket, minio.ListObjectsOptions{Recursive: true})
	for res := range c.RemoveObjects(ctx, loc.Bucket, objs, minio.RemoveObjectsOptions{}) {
		if res.Err != nil {
			return fmt.Errorf("empty bucket %s: remove %s: %w", loc.Bucket, res.ObjectName, res.Err)
		}
	}
	if err := c.RemoveBucket(ctx, loc.Bucket); err != nil {
		return fmt.Errorf("remove bucket %s: %w", loc.Bucket, err)
	}
	return nil
}

// Format is keys as a credentials file (S3Credentials reads it back).
func (k S3Keys) Format() []byte {
	return []byte("AWS_ACCESS_KEY_ID=" + k.AccessKeyID + "\nAWS_SECRET_ACCESS_KEY=" + k.SecretAccessKey + "\n")
}
