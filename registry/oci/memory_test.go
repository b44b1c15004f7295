package oci_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ladder-dev/ladder/registry/oci"
)

func TestMemoryMetadata(t *testing.T) {
	ctx := context.Background()
	m := oci.NewMemoryMetadata()
	put := func(repo, dgst, subject, tag string) {
		t.Helper()
		if err := m.PutManifest(ctx, repo, oci.Manifest{Digest: dgst, Subject: subject, Blobs: []string{"sha256:b"}}, tag); err != nil {
			t.Fatal(err)
		}
	}
	put("r/one", "sha256:1", "", "a")
	put("r/one", "sha256:1", "", "b")
	put("r/one", "sha256:2", "sha256:1", "c")
	put("r/one", "sha256:3", "sha256:1", "")
	put("r/two", "sha256:9", "", "z")

	tests := []struct {
		name string
		got  func() ([]string, error)
		want []string
	}{
		{name: "all repositories", got: func() ([]string, error) { return m.Repositories(ctx, "", 0) }, want: []string{"r/one", "r/two"}},
		{name: "repositories after last", got: func() ([]string, error) { return m.Repositories(ctx, "r/one", 5) }, want: []string{"r/two"}},
		{name: "first tag", got: func() ([]string, error) { return m.Tags(ctx, "r/one", "", 1) }, want: []string{"a"}},
		{name: "tags after a", got: func() ([]string, error) { return m.Tags(ctx, "r/one", "a", 0) }, want: []string{"b", "c"}},
		{name: "tags after a name between tags", got: func() ([]string, error) { return m.Tags(ctx, "r/one", "bb", 0) }, want: []string{"c"}},
		{name: "referrers", got: func() ([]string, error) {
			ms, err := m.Referrers(ctx, "r/one", "sha256:1")
			var ds []string
			for _, x := range ms {
				ds = append(ds, x.Digest)
			}
			return ds, err
		}, want: []string{"sha256:2", "sha256:3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.got()
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %v (%v), want %v", got, err, tc.want)
			}
		})
	}
	if ok, _ := m.BlobLinked(ctx, "r/one", "sha256:b"); !ok {
		t.Error("PutManifest did not link its blobs")
	}
	if err := m.DeleteManifest(ctx, "r/one", "sha256:1"); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"a", "b"} {
		if _, err := m.ResolveTag(ctx, "r/one", tag); !errors.Is(err, oci.ErrNotFound) {
			t.Errorf("tag %s after its manifest was deleted: %v", tag, err)
		}
	}
	notFound := map[string]error{
		"unknown repository tags": func() error { _, err := m.Tags(ctx, "nope", "", 0); return err }(),
		"unknown manifest":        func() error { _, err := m.GetManifest(ctx, "r/one", "sha256:1"); return err }(),
		"delete unknown tag":      m.DeleteTag(ctx, "r/one", "a"),
		"delete unknown manifest": m.DeleteManifest(ctx, "r/two", "sha256:1"),
		"unlink unknown blob":     m.UnlinkBlob(ctx, "r/two", "sha256:nope"),
		"resolve in unknown repo": func() error { _, err := m.ResolveTag(ctx, "nope", "a"); return err }(),
	}
	for name, err := range notFound {
		if !errors.Is(err, oci.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
}
