package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ladder-dev/ladder/registry/oci"
)

var (
	_ oci.Metadata     = (*Store)(nil)
	_ oci.BlobUnlinker = (*Store)(nil)
)

// findRepo looks repository name up in every layout the store may hold.
func (t *txn) findRepo(ctx context.Context, name string) (key string, row repoRow, found bool, err error) {
	if t.s.known >= 2 {
		ok, err := t.getJSON(ctx, repoKey(name), &row)
		if err != nil || ok {
			return repoKey(name), row, ok, err
		}
	}
	if t.schema < 2 {
		if key, ok := t.repoIDs[name]; ok {
			// Found (or created) earlier in this transaction.
			ok, err := t.getJSON(ctx, key, &row)
			return key, row, ok, err
		}
		// Schema 1 has no index by name: scan, and depend on the whole
		// table, so that two writers cannot both create the repository.
		if err := t.recordTable(ctx, TableRepositories); err != nil {
			return "", row, false, err
		}
		kvs, err := t.scan(ctx, repoIDPrefix())
		if err != nil {
			return "", row, false, err
		}
		for _, kv := range kvs {
			var r repoRow
			if json.Unmarshal(kv.Value, &r) == nil && r.Name == name {
				t.record(string(kv.Key), kv.ModRevision)
				t.repoIDs[name] = string(kv.Key)
				return string(kv.Key), r, true, nil
			}
		}
	}
	return "", row, false, nil
}

// ensureRepo finds repository name or makes a new row for it, keyed in the
// stored schema's layout. The caller puts the row.
func (t *txn) ensureRepo(ctx context.Context, name string) (key string, row repoRow, created bool, err error) {
	key, row, found, err := t.findRepo(ctx, name)
	if err != nil || found {
		return key, row, false, err
	}
	row = repoRow{Name: name, CreatedAt: t.now, UpdatedAt: t.now}
	if t.schema < 2 {
		row.ID = fmt.Sprintf("%016x", rand.Uint64())
		t.repoIDs[name] = repoKeyByID(row.ID)
		return repoKeyByID(row.ID), row, true, nil
	}
	row.Namespace = namespaceOf(name)
	if t.schema >= 6 {
		row.SizeBytes = new(int64)
	}
	return repoKey(name), row, true, nil
}

// findManifest looks manifest dgst of repo up in every layout the store may
// hold. Writers must have read the repository row: every manifest write
// changes it, which covers the scan of the sequence layout.
func (t *txn) findManifest(ctx context.Context, repo, dgst string) (key string, row manifestRow, found bool, err error) {
	if t.s.known >= 5 {
		ok, err := t.getJSON(ctx, manifestKey(repo, dgst), &row)
		if err != nil || ok {
			return manifestKey(repo, dgst), row, ok, err
		}
	}
	if t.schema < 5 {
		kvs, err := t.scan(ctx, manifestSeqPrefix(repo))
		if err != nil {
			return "", row, false, err
		}
		for _, kv := range kvs {
			var m manifestRow
			if json.Unmarshal(kv.Value, &m) == nil && m.Digest == dgst {
				t.record(string(kv.Key), kv.ModRevision)
				return string(kv.Key), m, true, nil
			}
		}
	}
	return "", row, false, nil
}

// manifests returns every manifest row of repo, in every layout, by digest.
func (t *txn) manifests(ctx context.Context, repo string) ([]manifestRow, error) {
	var kvs []*mvccpb.KeyValue
	if t.s.known >= 5 {
		got, err := t.scan(ctx, prefixOf(TableManifests)+repo+"@")
		if err != nil {
			return nil, err
		}
		kvs = append(kvs, got...)
	}
	if t.schema < 5 {
		got, err := t.scan(ctx, manifestSeqPrefix(repo))
		if err != nil {
			return nil, err
		}
		kvs = append(kvs, got...)
	}
	seen := map[string]bool{}
	var out []manifestRow
	for _, kv := range kvs {
		var m manifestRow
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if !seen[m.Digest] {
			seen[m.Digest] = true
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// linked reports whether dgst is linked to repo in any layout.
func (t *txn) linked(ctx context.Context, repo, dgst string) (bool, error) {
	if t.s.known >= 3 {
		kv, err := t.get(ctx, linkKey(repo, dgst))
		if err != nil || kv != nil {
			return kv != nil, err
		}
	}
	if t.schema < 3 {
		// Schemas 1 and 2 know blobs globally, not per repository.
		kv, err := t.get(ctx, blobKey(dgst))
		return kv != nil, err
	}
	return false, nil
}

// link records dgst as linked to repo in the stored layout, and returns the
// bytes it adds to the repository's size (0 when it was linked already).
func (t *txn) link(ctx context.Context, repo, dgst string, size int64) (int64, error) {
	if t.schema >= 3 {
		k := linkKey(repo, dgst)
		if _, pending := t.puts[k]; pending {
			return 0, nil
		}
		kv, err := t.get(ctx, k)
		if err != nil || kv != nil {
			return 0, err
		}
		return size, t.put(TableBlobRepository, k, linkRow{Repo: repo, Digest: dgst, Size: size, LinkedAt: t.now})
	}
	k := blobKey(dgst)
	if _, pending := t.puts[k]; pending {
		return 0, nil
	}
	kv, err := t.get(ctx, k)
	if err != nil || kv != nil {
		return 0, err
	}
	return 0, t.put(TableBlobs, k, blobRow{Digest: dgst, Size: size, CreatedAt: t.now})
}

// putRepo writes the repository row, adding grown bytes to its size.
func (t *txn) putRepo(key string, row repoRow, grown int64) error {
	row.UpdatedAt = t.now
	if t.schema >= 6 {
		size := grown
		if row.SizeBytes != nil {
			size += *row.SizeBytes
		}
		row.SizeBytes = &size
	}
	return t.put(TableRepositories, key, row)
}

// Repositories lists repository names after last (exclusive), at most n
// (n <= 0: all), sorted.
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	var names []string
	err := s.view(ctx, func(ctx context.Context, t *txn) error {
		if t.schema >= 2 {
			// Keyed by name: one ranged read. Id keys ('#') sort first and
			// are skipped by starting after them.
			from := repoKey(last) + "\x00"
			if last == "" {
				from = repoKey("$")
			}
			opts := []clientv3.OpOption{clientv3.WithRange(prefixEnd(prefixOf(TableRepositories))), clientv3.WithKeysOnly()}
			if n > 0 {
				opts = append(opts, clientv3.WithLimit(int64(n)))
			}
			resp, err := s.cli.Get(ctx, from, opts...)
			if err != nil {
				return fmt.Errorf("list repositories: %w", err)
			}
			for _, kv := range resp.Kvs {
				names = append(names, repoNameFromKey(string(kv.Key)))
			}
			return nil
		}
		kvs, err := t.scan(ctx, prefixOf(TableRepositories))
		if err != nil {
			return err
		}
		set := map[string]bool{}
		for _, kv := range kvs {
			if !isRepoIDKey(string(kv.Key)) {
				set[repoNameFromKey(string(kv.Key))] = true
				continue
			}
			var r repoRow
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				return fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			set[r.Name] = true
		}
		for name := range set {
			if name > last {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		if n > 0 && len(names) > n {
			names = names[:n]
		}
		return nil
	})
	return names, err
}

// LinkBlob records that blob dgst (size bytes) belongs to repo, creating the
// repository if needed.
func (s *Store) LinkBlob(ctx context.Context, repo, dgst string, size int64) error {
	if err := validRepo(repo); err != nil {
		return fmt.Errorf("link blob: %w", err)
	}
	err := s.update(ctx, func(ctx context.Context, t *txn) error {
		return t.linkBlob(ctx, repo, dgst, size)
	})
	if err != nil {
		return fmt.Errorf("link blob %s to %s: %w", dgst, repo, err)
	}
	return nil
}

// linkBlob is LinkBlob within t.
func (t *txn) linkBlob(ctx context.Context, repo, dgst string, size int64) error {
	before := len(t.ops)
	rkey, row, created, err := t.ensureRepo(ctx, repo)
	if err != nil {
		return err
	}
	added, err := t.link(ctx, repo, dgst, size)
	if err != nil {
		return err
	}
	if created || len(t.ops) > before {
		return t.putRepo(rkey, row, added)
	}
	return nil
}

// BlobLinked reports whether dgst is linked to repo. Schemas 1 and 2 know
// blobs globally: there a blob pushed to any repository is linked to all.
func (s *Store) BlobLinked(ctx context.Context, repo, dgst string) (bool, error) {
	var ok bool
	err := s.view(ctx, func(ctx context.Context, t *txn) (err error) {
		ok, err = t.linked(ctx, repo, dgst)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("check blob %s in %s: %w", dgst, repo, err)
	}
	return ok, nil
}

// UnlinkBlob removes the link between dgst and repo (schema 3 and later;
// schemas 1 and 2 have no per-repository links, so nothing is found).
func (s *Store) UnlinkBlob(ctx context.Context, repo, dgst string) error {
	err := s.update(ctx, func(ctx context.Context, t *txn) error {
		var l linkRow
		ok := false
		if t.s.known >= 3 {
			var err error
			if ok, err = t.getJSON(ctx, linkKey(repo, dgst), &l); err != nil {
				return err
			}
		}
		if !ok {
			return ErrNotFound
		}
		rkey, row, found, err := t.findRepo(ctx, repo)
		if err != nil {
			return err
		}
		t.del(TableBlobRepository, linkKey(repo, dgst))
		if found {
			return t.putRepo(rkey, row, -l.Size)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unlink blob %s from %s: %w", dgst, repo, err)
	}
	return nil
}

// PutManifest stores m in repo with its blob links, the tag (if tag != ""),
// the repository row and an event row, in one transaction. It creates the
// repository if needed and is idempotent.
func (s *Store) PutManifest(ctx context.Context, repo string, m oci.Manifest, tag string) error {
	if err := validRepo(repo); err != nil {
		return fmt.Errorf("put manifest: %w", err)
	}
	if tag != "" {
		if err := validTag(tag); err != nil {
			return fmt.Errorf("put manifest: %w", err)
		}
	}
	if m.Digest == "" {
		return fmt.Errorf("put manifest: %w: no digest", ErrInvalid)
	}
	err := s.update(ctx, func(ctx context.Context, t *txn) error {
		return t.putManifest(ctx, repo, m, tag)
	})
	if err != nil {
		return fmt.Errorf("put manifest %s in %s: %w", m.Digest, repo, err)
	}
	return nil
}

// putManifest is PutManifest within t.
func (t *txn) putManifest(ctx context.Context, repo string, m oci.Manifest, tag string) error {
	rkey, row, changed, err := t.ensureRepo(ctx, repo)
	if err != nil {
		return err
	}
	_, _, found, err := t.findManifest(ctx, repo, m.Digest)
	if err != nil {
		return err
	}
	var grown int64
	if !found {
		mr := manifestRow{Repo: repo, Digest: m.Digest, MediaType: m.MediaType, Size: m.Size,
			Content: m.Content, Blobs: m.Blobs, Children: m.Children, Subject: m.Subject,
			ArtifactType: m.ArtifactType, CreatedAt: t.now}
		mkey := manifestKey(repo, m.Digest)
		if t.schema < 5 {
			row.ManifestSeq++
			mr.Seq = row.ManifestSeq
			mkey = manifestKeyBySeq(repo, mr.Seq)
		}
		if err := t.put(TableManifests, mkey, mr); err != nil {
			return err
		}
		sizes := descriptorSizes(m.Content)
		for _, b := range m.Blobs {
			added, err := t.link(ctx, repo, b, sizes[b])
			if err != nil {
				return err
			}
			grown += added
		}
		if err := t.event("push", repo, m.Digest, ""); err != nil {
			return err
		}
		changed = true
	}
	if tag != "" {
		var tr tagRow
		ok, err := t.getJSON(ctx, tagKey(repo, tag), &tr)
		if err != nil {
			return err
		}
		if !ok || tr.Digest != m.Digest || (t.schema >= 4 && tr.PushedAt == nil) || (t.schema >= 7 && tr.MediaType == "") {
			tr = tagRow{Repo: repo, Tag: tag, Digest: m.Digest}
			if t.schema >= 4 {
				now := t.now
				tr.PushedAt = &now
			}
			if t.schema >= 7 {
				tr.MediaType = m.MediaType
			}
			if err := t.put(TableTags, tagKey(repo, tag), tr); err != nil {
				return err
			}
			if err := t.event("tag", repo, m.Digest, tag); err != nil {
				return err
			}
			changed = true
		}
	}
	if changed {
		return t.putRepo(rkey, row, grown)
	}
	return nil
}

// GetManifest returns manifest dgst of repo.
func (s *Store) GetManifest(ctx context.Context, repo, dgst string) (oci.Manifest, error) {
	var (
		row   manifestRow
		found bool
	)
	err := s.view(ctx, func(ctx context.Context, t *txn) (err error) {
		_, row, found, err = t.findManifest(ctx, repo, dgst)
		return err
	})
	if err == nil && !found {
		err = ErrNotFound
	}
	if err != nil {
		return oci.Manifest{}, fmt.Errorf("get manifest %s in %s: %w", dgst, repo, err)
	}
	return row.manifest(), nil
}

// ResolveTag returns the digest tag points to in repo.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (string, error) {
	var tr tagRow
	var ok bool
	err := s.view(ctx, func(ctx context.Context, t *txn) (err error) {
		ok, err = t.getJSON(ctx, tagKey(repo, tag), &tr)
		return err
	})
	if err == nil && !ok {
		err = ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("resolve tag %s in %s: %w", tag, repo, err)
	}
	return tr.Digest, nil
}

// Tags lists the tags of repo after last (exclusive), at most n (n <= 0:
// all), sorted. An unknown repository is ErrNotFound.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	var tags []string
	err := s.view(ctx, func(ctx context.Context, t *txn) error {
		p := tagPrefix(repo)
		from := p
		if last != "" {
			from = p + last + "\x00"
		}
		opts := []clientv3.OpOption{clientv3.WithRange(prefixEnd(p)), clientv3.WithKeysOnly()}
		if n > 0 {
			opts = append(opts, clientv3.WithLimit(int64(n)))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			tags = append(tags, string(kv.Key[len(p):]))
		}
		if len(tags) == 0 {
			_, _, found, err := t.findRepo(ctx, repo)
			if err != nil {
				return err
			}
			if !found {
				return ErrNotFound
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	return tags, nil
}

// DeleteManifest deletes manifest dgst of repo and every tag pointing to it.
func (s *Store) DeleteManifest(ctx context.Context, repo, dgst string) error {
	err := s.update(ctx, func(ctx context.Context, t *txn) error {
		rkey, row, found, err := t.findRepo(ctx, repo)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		mkey, _, found, err := t.findManifest(ctx, repo, dgst)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		t.del(TableManifests, mkey)
		kvs, err := t.scan(ctx, tagPrefix(repo))
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var tr tagRow
			if json.Unmarshal(kv.Value, &tr) == nil && tr.Digest == dgst {
				t.record(string(kv.Key), kv.ModRevision)
				t.del(TableTags, string(kv.Key))
			}
		}
		if err := t.event("delete", repo, dgst, ""); err != nil {
			return err
		}
		return t.putRepo(rkey, row, 0)
	})
	if err != nil {
		return fmt.Errorf("delete manifest %s in %s: %w", dgst, repo, err)
	}
	return nil
}

// DeleteTag deletes tag of repo.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	err := s.update(ctx, func(ctx context.Context, t *txn) error {
		return t.deleteTag(ctx, repo, tag)
	})
	if err != nil {
		return fmt.Errorf("delete tag %s in %s: %w", tag, repo, err)
	}
	return nil
}

// deleteTag is DeleteTag within t.
func (t *txn) deleteTag(ctx context.Context, repo, tag string) error {
	var tr tagRow
	ok, err := t.getJSON(ctx, tagKey(repo, tag), &tr)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotFound
	}
	t.del(TableTags, tagKey(repo, tag))
	return t.event("untag", repo, tr.Digest, tag)
}

// Referrers lists the manifests of repo whose subject is dgst, by digest.
func (s *Store) Referrers(ctx context.Context, repo, dgst string) ([]oci.Manifest, error) {
	var out []oci.Manifest
	err := s.view(ctx, func(ctx context.Context, t *txn) error {
		rows, err := t.manifests(ctx, repo)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Subject == dgst {
				out = append(out, r.manifest())
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list referrers of %s in %s: %w", dgst, repo, err)
	}
	return out, nil
}
