package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// unknownMediaType marks a tag whose manifest is gone (schema 7).
const unknownMediaType = "unknown"

func decodeRow(r Row, v any) error {
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("decode %s: %w", r.Key, err)
	}
	return nil
}

// migrateRepositoriesByName (1→2) moves every /repositories/#<id> row to
// /repositories/<name>, recording the namespace. Two id rows with one name
// (which schema 1 should never write) merge into one.
func migrateRepositoriesByName(ctx context.Context, b *Batcher) error {
	return b.Scan(ctx, repoIDPrefix(), func(ctx context.Context, rows []Row, c *Changes) error {
		repos := make([]repoRow, len(rows))
		keys := make([]string, len(rows))
		for i, r := range rows {
			if err := decodeRow(r, &repos[i]); err != nil {
				return err
			}
			keys[i] = repoKey(repos[i].Name)
		}
		existing, err := c.Get(ctx, keys)
		if err != nil {
			return err
		}
		for i, r := range rows {
			row := repos[i]
			row.Namespace = namespaceOf(row.Name)
			if v, ok := existing[keys[i]]; ok {
				var cur repoRow
				if err := json.Unmarshal(v, &cur); err != nil {
					return fmt.Errorf("decode %s: %w", keys[i], err)
				}
				row = mergeRepo(cur, row)
			}
			if err := c.Put(TableRepositories, keys[i], row); err != nil {
				return err
			}
			existing[keys[i]] = c.vals[keys[i]]
			c.Delete(TableRepositories, r.Key)
			c.Changed()
		}
		return nil
	})
}

// mergeRepo combines two rows of one repository: the older row's identity,
// the later update and the larger push sequence.
func mergeRepo(a, b repoRow) repoRow {
	if b.CreatedAt.Before(a.CreatedAt) || (b.CreatedAt.Equal(a.CreatedAt) && b.ID < a.ID) {
		a, b = b, a
	}
	if b.UpdatedAt.After(a.UpdatedAt) {
		a.UpdatedAt = b.UpdatedAt
	}
	a.ManifestSeq = max(a.ManifestSeq, b.ManifestSeq)
	a.Namespace = namespaceOf(a.Name)
	return a
}

// migrateBlobLinks (2→3) links every blob a manifest lists to the
// manifest's repository, with the size from the manifest's descriptors or
// else the global blobs table.
func migrateBlobLinks(ctx context.Context, b *Batcher) error {
	return b.Scan(ctx, prefixOf(TableManifests), func(ctx context.Context, rows []Row, c *Changes) error {
		type want struct {
			repo, dgst string
			size       int64
			at         time.Time
		}
		var wants []want
		var keys, sizeless []string
		for _, r := range rows {
			repo, _, ok := splitManifestKey(r.Key)
			if !ok {
				continue
			}
			var m manifestRow
			if err := decodeRow(r, &m); err != nil {
				return err
			}
			sizes := descriptorSizes(m.Content)
			for _, d := range m.Blobs {
				size, known := sizes[d]
				if !known {
					sizeless = append(sizeless, blobKey(d))
				}
				wants = append(wants, want{repo: repo, dgst: d, size: size, at: m.CreatedAt})
				keys = append(keys, linkKey(repo, d))
			}
		}
		existing, err := c.Get(ctx, keys)
		if err != nil {
			return err
		}
		blobs, err := c.Get(ctx, sizeless)
		if err != nil {
			return err
		}
		for _, w := range wants {
			k := linkKey(w.repo, w.dgst)
			if _, ok := existing[k]; ok {
				continue
			}
			if w.size == 0 {
				var br blobRow
				if v, ok := blobs[blobKey(w.dgst)]; ok && json.Unmarshal(v, &br) == nil {
					w.size = br.Size
				}
			}
			if err := c.Put(TableBlobRepository, k, linkRow{Repo: w.repo, Digest: w.dgst, Size: w.size, LinkedAt: w.at}); err != nil {
				return err
			}
			existing[k] = nil
			c.Changed()
		}
		return nil
	})
}

// migrateTagPushedAt (3→4) sets pushed_at on every tag: the time of the
// latest tag event for it, or else the creation time of its manifest, or
// else the Unix epoch (a tag whose history is gone).
func migrateTagPushedAt(ctx context.Context, b *Batcher) error {
	latest := map[string]time.Time{}
	err := b.Each(ctx, prefixOf(TableEvents), func(r Row) error {
		var e eventRow
		if json.Unmarshal(r.Value, &e) != nil || e.Action != "tag" {
			return nil
		}
		k := e.Repo + ":" + e.Tag
		if e.Time.After(latest[k]) {
			latest[k] = e.Time
		}
		return nil
	})
	if err != nil {
		return err
	}
	// created caches the manifests' creation times of one repository.
	var createdRepo string
	created := map[string]time.Time{}
	loadCreated := func(repo string) error {
		if repo == createdRepo {
			return nil
		}
		createdRepo, created = repo, map[string]time.Time{}
		for _, p := range []string{manifestSeqPrefix(repo), prefixOf(TableManifests) + repo + "@"} {
			err := b.Each(ctx, p, func(r Row) error {
				var m manifestRow
				if json.Unmarshal(r.Value, &m) == nil {
					created[m.Digest] = m.CreatedAt
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	return b.Scan(ctx, prefixOf(TableTags), func(ctx context.Context, rows []Row, c *Changes) error {
		for _, r := range rows {
			var t tagRow
			if err := decodeRow(r, &t); err != nil {
				return err
			}
			if t.PushedAt != nil {
				continue
			}
			at, ok := latest[t.Repo+":"+t.Tag]
			if !ok {
				if err := loadCreated(t.Repo); err != nil {
					return err
				}
				at, ok = created[t.Digest]
			}
			if !ok {
				at = time.Unix(0, 0).UTC()
			}
			t.PushedAt = &at
			if err := c.Put(TableTags, r.Key, t); err != nil {
				return err
			}
			c.Changed()
		}
		return nil
	})
}

// migrateManifestsByDigest (4→5) moves every /manifests/<repo>#<seq> row
// to /manifests/<repo>@<digest>. When the digest key exists already, it
// wins and the sequence row is dropped.
func migrateManifestsByDigest(ctx context.Context, b *Batcher) error {
	return b.Scan(ctx, prefixOf(TableManifests), func(ctx context.Context, rows []Row, c *Changes) error {
		type move struct {
			from, to string
			row      manifestRow
		}
		var moves []move
		var keys []string
		for _, r := range rows {
			repo, bySeq, ok := splitManifestKey(r.Key)
			if !ok || !bySeq {
				continue
			}
			var m manifestRow
			if err := decodeRow(r, &m); err != nil {
				return err
			}
			m.Seq = 0
			to := manifestKey(repo, m.Digest)
			moves = append(moves, move{from: r.Key, to: to, row: m})
			keys = append(keys, to)
		}
		existing, err := c.Get(ctx, keys)
		if err != nil {
			return err
		}
		for _, mv := range moves {
			if _, ok := existing[mv.to]; !ok {
				if err := c.Put(TableManifests, mv.to, mv.row); err != nil {
					return err
				}
				existing[mv.to] = nil
			}
			c.Delete(TableManifests, mv.from)
			c.Changed()
		}
		return nil
	})
}

// migrateRepositorySize (5→6) sets size_bytes on every repository to the
// sum of the sizes of the blobs linked to it.
func migrateRepositorySize(ctx context.Context, b *Batcher) error {
	sizes := map[string]int64{}
	err := b.Each(ctx, prefixOf(TableBlobRepository), func(r Row) error {
		var l linkRow
		if err := decodeRow(r, &l); err != nil {
			return err
		}
		sizes[l.Repo] += l.Size
		return nil
	})
	if err != nil {
		return err
	}
	return b.Scan(ctx, prefixOf(TableRepositories), func(ctx context.Context, rows []Row, c *Changes) error {
		for _, r := range rows {
			if isRepoIDKey(r.Key) {
				return fmt.Errorf("repository row %s still uses the schema 1 layout", r.Key)
			}
			var row repoRow
			if err := decodeRow(r, &row); err != nil {
				return err
			}
			want := sizes[row.Name]
			if row.SizeBytes != nil && *row.SizeBytes == want {
				continue
			}
			row.SizeBytes = &want
			if err := c.Put(TableRepositories, r.Key, row); err != nil {
				return err
			}
			c.Changed()
		}
		return nil
	})
}

// migrateTagMediaType (6→7) copies each tagged manifest's media type onto
// its tag row ("unknown" when the manifest is gone).
func migrateTagMediaType(ctx context.Context, b *Batcher) error {
	return b.Scan(ctx, prefixOf(TableTags), func(ctx context.Context, rows []Row, c *Changes) error {
		tags := make([]tagRow, len(rows))
		var keys []string
		for i, r := range rows {
			if err := decodeRow(r, &tags[i]); err != nil {
				return err
			}
			if tags[i].MediaType == "" {
				keys = append(keys, manifestKey(tags[i].Repo, tags[i].Digest))
			}
		}
		if len(keys) == 0 {
			return nil
		}
		manifests, err := c.Get(ctx, keys)
		if err != nil {
			return err
		}
		for i, r := range rows {
			t := tags[i]
			if t.MediaType != "" {
				continue
			}
			t.MediaType = unknownMediaType
			var m manifestRow
			if v, ok := manifests[manifestKey(t.Repo, t.Digest)]; ok && json.Unmarshal(v, &m) == nil && m.MediaType != "" {
				t.MediaType = m.MediaType
			}
			if err := c.Put(TableTags, r.Key, t); err != nil {
				return err
			}
			c.Changed()
		}
		return nil
	})
}
