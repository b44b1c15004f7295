package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ladder-dev/ladder/registry/oci"
)

// Garbage collection of blobs. A blob is garbage when no manifest of any
// repository references it and its file has not been touched for
// GCMinAge: a push writes its blobs before its manifest, and a client that
// finds a blob already there (HEAD, or a mount) touches it, so a push under
// way never loses a blob to the collector. The collector removes the
// blob's rows (its links to repositories, its row in blobs) before its
// file, so a manifest pushed after that is refused (MANIFEST_BLOB_UNKNOWN)
// rather than accepted without its blob.

// GCMinAge is how long a blob no manifest references is kept.
const GCMinAge = time.Hour

var _ oci.BlobReferencer = (*Store)(nil)

// GCOptions are the choices of a collection.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool `json:"dry_run"`
}

// GCReport is what a collection found and did.
type GCReport struct {
	DryRun bool `json:"dry_run"`
	// Blobs is how many blob files there were; Referenced how many of them
	// a manifest references; Recent how many unreferenced ones were kept
	// for being younger than GCMinAge.
	Blobs      int `json:"blobs"`
	Referenced int `json:"referenced"`
	Recent     int `json:"recent"`
	// Removed lists the blobs removed (or, with DryRun, to remove).
	Removed      []string `json:"removed"`
	RemovedBytes int64    `json:"removed_bytes"`
	ElapsedMs    int64    `json:"elapsed_ms"`
}

// BlobReferenced reports whether a manifest of repo references dgst
// (oci.BlobReferencer).
func (s *Store) BlobReferenced(ctx context.Context, repo, dgst string) (string, error) {
	var by string
	err := s.view(ctx, func(ctx context.Context, t *txn) error {
		rows, err := t.manifests(ctx, repo)
		if err != nil {
			return err
		}
		for _, m := range rows {
			for _, b := range m.Blobs {
				if b == dgst {
					by = m.Digest
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("check references to %s in %s: %w", dgst, repo, err)
	}
	return by, nil
}

// referencedBlobs returns every blob a manifest of any repository
// references.
func (s *Store) referencedBlobs(ctx context.Context) (map[string]bool, error) {
	refs := map[string]bool{}
	err := s.view(ctx, func(ctx context.Context, t *txn) error {
		kvs, err := t.scan(ctx, prefixOf(TableManifests))
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var m manifestRow
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				return fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			for _, b := range m.Blobs {
				refs[b] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	return refs, nil
}

// linksByBlob returns the keys of every blob↔repository link, by blob.
func (s *Store) linksByBlob(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	err := s.view(ctx, func(ctx context.Context, t *txn) error {
		kvs, err := t.scan(ctx, prefixOf(TableBlobRepository))
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			k := string(kv.Key)
			if i := strings.LastIndexByte(k, '@'); i > 0 {
				out[k[i+1:]] = append(out[k[i+1:]], k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read blob links: %w", err)
	}
	return out, nil
}

// dropBlob removes a blob's links to repositories (shrinking their sizes)
// and its row, unless a manifest referencing it arrived meanwhile. A link
// made after linksByBlob read them came with a fresh upload or a mount,
// both of which make the file too young to collect. It returns the links
// it removed.
func (s *Store) dropBlob(ctx context.Context, dgst string, linkKeys []string) ([]linkRow, error) {
	var dropped []linkRow
	err := s.update(ctx, func(ctx context.Context, t *txn) error {
		dropped = dropped[:0]
		for _, key := range linkKeys {
			var l linkRow
			ok, err := t.getJSON(ctx, key, &l)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			rows, err := t.manifests(ctx, l.Repo)
			if err != nil {
				return err
			}
			for _, m := range rows {
				if slices.Contains(m.Blobs, dgst) {
					return fmt.Errorf("blob %s: %w: manifest %s of %s references it", dgst, errReferenced, m.Digest, l.Repo)
				}
			}
			rkey, row, found, err := t.findRepo(ctx, l.Repo)
			if err != nil {
				return err
			}
			t.del(TableBlobRepository, key)
			dropped = append(dropped, l)
			if found {
				if err := t.putRepo(rkey, row, -l.Size); err != nil {
					return err
				}
			}
		}
		if kv, err := t.get(ctx, blobKey(dgst)); err != nil {
			return err
		} else if kv != nil {
			t.del(TableBlobs, blobKey(dgst))
		}
		return nil
	})
	return dropped, err
}

var errReferenced = errors.New("still referenced")

// CollectGarbage removes the blobs of the blob store that no manifest
// references and that are older than GCMinAge, with their rows. The store
// is the blob folder (oci.FolderBlobs) or an S3 bucket: the collector only
// walks, stats and deletes through oci.BlobStore.
func CollectGarbage(ctx context.Context, st *Store, blobs oci.BlobStore, o GCOptions) (GCReport, error) {
	start := time.Now()
	rep := GCReport{DryRun: o.DryRun, Removed: []string{}}
	refs, err := st.referencedBlobs(ctx)
	if err != nil {
		return rep, fmt.Errorf("collect garbage: %w", err)
	}
	type cand struct {
		dgst string
		size int64
	}
	var cands []cand
	cutoff := time.Now().Add(-GCMinAge)
	err = blobs.Walk(ctx, func(bi oci.BlobInfo) error {
		rep.Blobs++
		if refs[bi.Digest] {
			rep.Referenced++
			return nil
		}
		if bi.Modified.After(cutoff) {
			rep.Recent++
			return nil
		}
		cands = append(cands, cand{dgst: bi.Digest, size: bi.Size})
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("collect garbage: walk blobs: %w", err)
	}
	var links map[string][]string
	if !o.DryRun && len(cands) > 0 {
		if links, err = st.linksByBlob(ctx); err != nil {
			return rep, fmt.Errorf("collect garbage: %w", err)
		}
	}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if o.DryRun {
			rep.Removed = append(rep.Removed, c.dgst)
			rep.RemovedBytes += c.size
			continue
		}
		dropped, err := st.dropBlob(ctx, c.dgst, links[c.dgst])
		if err != nil {
			if errors.Is(err, errReferenced) {
				rep.Referenced++
				continue
			}
			return rep, fmt.Errorf("collect garbage: %w", err)
		}
		// Touched since the walk (a client found it and is about to use
		// it): keep the file and put its links back.
		if bi, err := blobs.Stat(ctx, c.dgst); err != nil || bi.Modified.After(cutoff) {
			for _, l := range dropped {
				if err := st.LinkBlob(ctx, l.Repo, l.Digest, l.Size); err != nil {
					return rep, fmt.Errorf("collect garbage: relink blob %s: %w", c.dgst, err)
				}
			}
			rep.Recent++
			continue
		}
		if err := blobs.Delete(ctx, c.dgst); err != nil {
			return rep, fmt.Errorf("collect garbage: remove blob %s: %w", c.dgst, err)
		}
		rep.Removed = append(rep.Removed, c.dgst)
		rep.RemovedBytes += c.size
	}
	rep.ElapsedMs = time.Since(start).Milliseconds()
	return rep, nil
}

func (r *Replica) handleGC(w http.ResponseWriter, req *http.Request) {
	var o GCOptions
	if r.adminRequest(w, req, &o) == nil {
		return
	}
	st := r.Store()
	if st == nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": ErrNotReady.Error()})
		return
	}
	rep, err := CollectGarbage(req.Context(), st, r.blobStore(), o)
	if err != nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	r.log.Info("garbage collected", "dry_run", o.DryRun, "blobs", rep.Blobs, "removed", len(rep.Removed),
		"removed_bytes", rep.RemovedBytes, "elapsed_ms", rep.ElapsedMs)
	writeJSONResponse(w, http.StatusOK, rep)
}

// pruneUploads removes abandoned uploads now and then, on the store's
// leader only (the blob folder is shared).
func (r *Replica) pruneUploads() {
	age := r.cfg.UploadMaxAge
	if age < 0 {
		return
	}
	if age == 0 {
		age = DefaultUploadMaxAge
	}
	every := min(max(age/4, time.Second), 10*time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		srv := r.etcd.Server
		if srv.Leader() != srv.MemberID() {
			continue
		}
		start := time.Now()
		n, err := oci.PruneUploads(r.cfg.BlobDir, age)
		if err != nil {
			r.log.Warn("prune uploads failed", "err", err)
			continue
		}
		if n > 0 {
			r.log.Info("abandoned uploads pruned", "removed", n, "idle_longer_than", age, "elapsed", time.Since(start))
		}
	}
}

// DefaultUploadMaxAge is how long an upload may receive nothing before the
// pruner removes it.
const DefaultUploadMaxAge = time.Hour

// blobStore is where the replica's blobs are: the S3 bucket if one is
// configured, else the blob folder.
func (r *Replica) blobStore() oci.BlobStore {
	if r.blobs != nil {
		return r.blobs
	}
	return oci.FolderBlobs{Dir: r.cfg.BlobDir}
}
