package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ladder-dev/ladder/registry/oci"
)

func testImage(name string, sizes ...int64) oci.Manifest {
	config := newBlob(name+"/config", 1234)
	var layers []blobSpec
	for i, s := range sizes {
		layers = append(layers, newBlob(fmt.Sprintf("%s/layer/%d", name, i), s))
	}
	return imageManifest(config, layers, "", "")
}

func TestMetadataEverySchema(t *testing.T) {
	cli := newTestEtcd(t, false)
	ctx := context.Background()
	latest := LatestSchema()
	type tc struct {
		name          string
		schema, known int
	}
	var cases []tc
	for s := 1; s <= latest; s++ {
		cases = append(cases, tc{fmt.Sprintf("schema %d read by its release", s), s, s})
		if s < latest {
			cases = append(cases, tc{fmt.Sprintf("schema %d read by the newest release", s), s, latest})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := freshStore(t, cli, c.schema, c.known)
			const repo = "library/app"
			if names, err := st.Repositories(ctx, "", 0); err != nil || len(names) != 0 {
				t.Fatalf("Repositories on empty store = %v, %v", names, err)
			}
			m1 := testImage("m1", 1000, 2000)
			for _, b := range m1.Blobs {
				if err := st.LinkBlob(ctx, repo, b, 10); err != nil {
					t.Fatal(err)
				}
			}
			ok, err := st.BlobLinked(ctx, repo, m1.Blobs[1])
			if err != nil || !ok {
				t.Fatalf("BlobLinked after LinkBlob = %v, %v", ok, err)
			}
			ok, err = st.BlobLinked(ctx, "other/repo", m1.Blobs[1])
			if err != nil {
				t.Fatal(err)
			}
			if global := c.schema < 3; ok != global {
				t.Errorf("BlobLinked in another repository = %v, want %v (blobs are global before schema 3)", ok, global)
			}
			if err := st.PutManifest(ctx, repo, m1, "v1"); err != nil {
				t.Fatal(err)
			}
			before, _ := CountRows(ctx, cli)
			if err := st.PutManifest(ctx, repo, m1, "v1"); err != nil {
				t.Fatal(err)
			}
			after, _ := CountRows(ctx, cli)
			if !mapsEqual(before.Tables, after.Tables) {
				t.Errorf("PutManifest again changed row counts: %v -> %v", before.Tables, after.Tables)
			}
			got, err := st.GetManifest(ctx, repo, m1.Digest)
			if err != nil || string(got.Content) != string(m1.Content) || !slices.Equal(got.Blobs, m1.Blobs) {
				t.Fatalf("GetManifest = %+v, %v", got.Digest, err)
			}
			m2 := testImage("m2", 500)
			if err := st.PutManifest(ctx, repo, m2, "v1"); err != nil {
				t.Fatal(err)
			}
			if err := st.PutManifest(ctx, repo, m2, "v2"); err != nil {
				t.Fatal(err)
			}
			if d, err := st.ResolveTag(ctx, repo, "v1"); err != nil || d != m2.Digest {
				t.Errorf("ResolveTag v1 = %s, %v; want %s (the tag moved)", d, err, m2.Digest)
			}
			if tags, err := st.Tags(ctx, repo, "", 0); err != nil || !slices.Equal(tags, []string{"v1", "v2"}) {
				t.Errorf("Tags = %v, %v", tags, err)
			}
			if tags, err := st.Tags(ctx, repo, "v1", 1); err != nil || !slices.Equal(tags, []string{"v2"}) {
				t.Errorf("Tags after v1 = %v, %v", tags, err)
			}
			sig := imageManifest(newEmptyConfig(), []blobSpec{newBlob("sig", 300)}, m1.Digest, artifactSig)
			if err := st.PutManifest(ctx, repo, sig, ""); err != nil {
				t.Fatal(err)
			}
			refs, err := st.Referrers(ctx, repo, m1.Digest)
			if err != nil || len(refs) != 1 || refs[0].Digest != sig.Digest || refs[0].ArtifactType != artifactSig {
				t.Errorf("Referrers = %v, %v", refs, err)
			}
			for _, r := range []string{"b/c", "a"} {
				if err := st.PutManifest(ctx, r, testImage(r, 1), "latest"); err != nil {
					t.Fatal(err)
				}
			}
			if names, err := st.Repositories(ctx, "", 0); err != nil || !slices.Equal(names, []string{"a", "b/c", repo}) {
				t.Errorf("Repositories = %v, %v", names, err)
			}
			if names, err := st.Repositories(ctx, "a", 1); err != nil || !slices.Equal(names, []string{"b/c"}) {
				t.Errorf("Repositories after a = %v, %v", names, err)
			}
			if err := st.DeleteManifest(ctx, repo, m2.Digest); err != nil {
				t.Fatal(err)
			}
			if _, err := st.GetManifest(ctx, repo, m2.Digest); !errors.Is(err, oci.ErrNotFound) {
				t.Errorf("GetManifest after delete: %v, want ErrNotFound", err)
			}
			if tags, err := st.Tags(ctx, repo, "", 0); err != nil || len(tags) != 0 {
				t.Errorf("Tags after deleting their manifest = %v, %v", tags, err)
			}
			if err := st.DeleteTag(ctx, repo, "v1"); !errors.Is(err, oci.ErrNotFound) {
				t.Errorf("DeleteTag of a deleted tag: %v, want ErrNotFound", err)
			}
			if _, err := st.Tags(ctx, "no/such", "", 0); !errors.Is(err, oci.ErrNotFound) {
				t.Errorf("Tags of an unknown repository: %v, want ErrNotFound", err)
			}
			if err := st.PutManifest(ctx, repo, m1, "keep"); err != nil {
				t.Fatal(err)
			}
			if err := st.DeleteTag(ctx, repo, "keep"); err != nil {
				t.Errorf("DeleteTag: %v", err)
			}
			checkLayout(t, st, c.schema)
		})
	}
}

// checkLayout checks that the rows use the layout of schema.
func checkLayout(t *testing.T, st *Store, schema int) {
	t.Helper()
	cli := st.cli
	for k, r := range rowsOf[repoRow](t, cli, TableRepositories) {
		if isRepoIDKey(k) != (schema < 2) {
			t.Errorf("schema %d: repository key %s", schema, k)
		}
		if (r.SizeBytes != nil) != (schema >= 6) {
			t.Errorf("schema %d: repository %s size_bytes = %v", schema, r.Name, r.SizeBytes)
		}
		if schema >= 6 {
			var sum int64
			for _, l := range rowsOf[linkRow](t, cli, TableBlobRepository) {
				if l.Repo == r.Name {
					sum += l.Size
				}
			}
			if *r.SizeBytes != sum {
				t.Errorf("schema %d: repository %s size_bytes = %d, linked blobs sum to %d", schema, r.Name, *r.SizeBytes, sum)
			}
		}
	}
	for k := range rowsOf[manifestRow](t, cli, TableManifests) {
		_, bySeq, _ := splitManifestKey(k)
		if bySeq != (schema < 5) {
			t.Errorf("schema %d: manifest key %s", schema, k)
		}
	}
	for k, tr := range rowsOf[tagRow](t, cli, TableTags) {
		if (tr.PushedAt != nil) != (schema >= 4) || (tr.MediaType != "") != (schema >= 7) {
			t.Errorf("schema %d: tag %s = %+v", schema, k, tr)
		}
	}
	links := len(rowsOf[linkRow](t, cli, TableBlobRepository))
	if (links > 0) != (schema >= 3) {
		t.Errorf("schema %d: %d blob_repository rows", schema, links)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestOpenStoreRefusesNewerSchema(t *testing.T) {
	cli := newTestEtcd(t, false)
	wipe(t, cli)
	ctx := context.Background()
	if _, err := InitSchema(ctx, cli, 6, "3.1.0"); err != nil {
		t.Fatal(err)
	}
	_, err := OpenStore(ctx, cli, StoreOptions{Release: "2.2.4"})
	var tooNew *SchemaTooNewError
	if !errors.As(err, &tooNew) || !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("OpenStore as 2.2.4 on schema 6: %v, want SchemaTooNewError", err)
	}
	want := "store schema 6 is newer than release 2.2.4 knows (4): run release 3.1.0 or later"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestSchemaOfReleases(t *testing.T) {
	cases := []struct {
		release string
		schema  int
	}{{"1.4.0", 1}, {"2.0.1", 2}, {"2.1.4", 3}, {"2.2.4", 4}, {"2.3.0", 4}, {"3.0.1", 5}, {"3.1.2", 6}, {"3.2.0-rc.1", 7}}
	for _, c := range cases {
		t.Run(c.release, func(t *testing.T) {
			if s, err := SchemaOf(c.release); err != nil || s != c.schema {
				t.Errorf("SchemaOf(%s) = %d, %v; want %d", c.release, s, err, c.schema)
			}
		})
	}
	if _, err := SchemaOf("9.9.9"); !errors.Is(err, ErrUnknownRelease) {
		t.Errorf("SchemaOf(9.9.9): %v, want ErrUnknownRelease", err)
	}
	if got := releaseFor(7); got != "3.2.0-rc.1" {
		t.Errorf("releaseFor(7) = %s", got)
	}
}

func TestStoreRefusesSchemaMigratedPastIt(t *testing.T) {
	cli := newTestEtcd(t, false)
	ctx := context.Background()
	old := freshStore(t, cli, 4, 4)
	if err := old.PutManifest(ctx, "a/b", testImage("x", 1), "v1"); err != nil {
		t.Fatal(err)
	}
	if err := openStore(t, cli, 5).Migrate(ctx, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The old release's cached schema is stale; its next write finds out.
	err := old.PutManifest(ctx, "a/b", testImage("y", 1), "v2")
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("write by a release that knows 4 on schema 5: %v, want ErrSchemaTooNew", err)
	}
	if _, err := old.ResolveTag(ctx, "a/b", "v1"); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("read after the schema moved past the release: %v, want ErrSchemaTooNew", err)
	}
}
