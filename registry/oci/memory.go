package oci

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// MemoryMetadata is a Metadata held in memory, safe for concurrent use. The
// zero value is ready to use. It serves tests and the stand-alone test server;
// it implements BlobUnlinker.
type MemoryMetadata struct {
	mu     sync.RWMutex
	repos  map[string]*memRepo
	events int
}

type memRepo struct {
	blobs     map[string]int64    // digest -> size
	manifests map[string]Manifest // digest -> manifest
	tags      map[string]string   // tag -> digest
}

// NewMemoryMetadata returns an empty MemoryMetadata.
func NewMemoryMetadata() *MemoryMetadata { return &MemoryMetadata{} }

var (
	_ Metadata     = (*MemoryMetadata)(nil)
	_ BlobUnlinker = (*MemoryMetadata)(nil)
)

// repo returns the repository name, creating it when create is set; nil if
// it does not exist. The caller holds mu (for writing when create is set).
func (m *MemoryMetadata) repo(name string, create bool) *memRepo {
	r := m.repos[name]
	if r == nil && create {
		if m.repos == nil {
			m.repos = map[string]*memRepo{}
		}
		r = &memRepo{blobs: map[string]int64{}, manifests: map[string]Manifest{}, tags: map[string]string{}}
		m.repos[name] = r
	}
	return r
}

// page returns the sorted keys after last, at most n (n<=0: all).
func page(keys []string, last string, n int) []string {
	sort.Strings(keys)
	i := sort.SearchStrings(keys, last)
	if last != "" && i < len(keys) && keys[i] == last {
		i++
	}
	keys = keys[i:]
	if n > 0 && len(keys) > n {
		keys = keys[:n]
	}
	return slices.Clone(keys)
}

// Repositories implements Metadata.
func (m *MemoryMetadata) Repositories(_ context.Context, last string, n int) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	names := make([]string, 0, len(m.repos))
	for name := range m.repos {
		names = append(names, name)
	}
	return page(names, last, n), nil
}

// LinkBlob implements Metadata.
func (m *MemoryMetadata) LinkBlob(_ context.Context, repo, dgst string, size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.repo(repo, true).blobs[dgst] = size
	return nil
}

// BlobLinked implements Metadata.
func (m *MemoryMetadata) BlobLinked(_ context.Context, repo, dgst string) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.repo(repo, false)
	if r == nil {
		return false, nil
	}
	_, ok := r.blobs[dgst]
	return ok, nil
}

// UnlinkBlob implements BlobUnlinker.
func (m *MemoryMetadata) UnlinkBlob(_ context.Context, repo, dgst string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil {
		return fmt.Errorf("unlink blob %s: repository %s: %w", dgst, repo, ErrNotFound)
	}
	if _, ok := r.blobs[dgst]; !ok {
		return fmt.Errorf("unlink blob %s in %s: %w", dgst, repo, ErrNotFound)
	}
	delete(r.blobs, dgst)
	return nil
}

// PutManifest implements Metadata.
func (m *MemoryMetadata) PutManifest(_ context.Context, repo string, mf Manifest, tag string) error {
	mf.Content = slices.Clone(mf.Content)
	mf.Blobs = slices.Clone(mf.Blobs)
	mf.Children = slices.Clone(mf.Children)
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, true)
	r.manifests[mf.Digest] = mf
	for _, b := range mf.Blobs {
		if _, ok := r.blobs[b]; !ok {
			r.blobs[b] = 0
		}
	}
	if tag != "" {
		r.tags[tag] = mf.Digest
	}
	m.events++
	return nil
}

// GetManifest implements Metadata.
func (m *MemoryMetadata) GetManifest(_ context.Context, repo, dgst string) (Manifest, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.repo(repo, false)
	if r == nil {
		return Manifest{}, fmt.Errorf("get manifest %s: repository %s: %w", dgst, repo, ErrNotFound)
	}
	mf, ok := r.manifests[dgst]
	if !ok {
		return Manifest{}, fmt.Errorf("get manifest %s in %s: %w", dgst, repo, ErrNotFound)
	}
	mf.Content = slices.Clone(mf.Content)
	return mf, nil
}

// ResolveTag implements Metadata.
func (m *MemoryMetadata) ResolveTag(_ context.Context, repo, tag string) (string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.repo(repo, false)
	if r == nil {
		return "", fmt.Errorf("resolve tag %s: repository %s: %w", tag, repo, ErrNotFound)
	}
	d, ok := r.tags[tag]
	if !ok {
		return "", fmt.Errorf("resolve tag %s in %s: %w", tag, repo, ErrNotFound)
	}
	return d, nil
}

// Tags implements Metadata.
func (m *MemoryMetadata) Tags(_ context.Context, repo, last string, n int) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.repo(repo, false)
	if r == nil {
		return nil, fmt.Errorf("list tags: repository %s: %w", repo, ErrNotFound)
	}
	tags := make([]string, 0, len(r.tags))
	for t := range r.tags {
		tags = append(tags, t)
	}
	return page(tags, last, n), nil
}

// DeleteManifest implements Metadata.
func (m *MemoryMetadata) DeleteManifest(_ context.Context, repo, dgst string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil {
		return fmt.Errorf("delete manifest %s: repository %s: %w", dgst, repo, ErrNotFound)
	}
	if _, ok := r.manifests[dgst]; !ok {
		return fmt.Errorf("delete manifest %s in %s: %w", dgst, repo, ErrNotFound)
	}
	delete(r.manifests, dgst)
	for t, d := range r.tags {
		if d == dgst {
			delete(r.tags, t)
		}
	}
	m.events++
	return nil
}

// DeleteTag implements Metadata.
func (m *MemoryMetadata) DeleteTag(_ context.Context, repo, tag string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil {
		return fmt.Errorf("delete tag %s: repository %s: %w", tag, repo, ErrNotFound)
	}
	if _, ok := r.tags[tag]; !ok {
		return fmt.Errorf("delete tag %s in %s: %w", tag, repo, ErrNotFound)
	}
	delete(r.tags, tag)
	m.events++
	return nil
}

// Referrers implements Metadata. The result is sorted by digest.
func (m *MemoryMetadata) Referrers(_ context.Context, repo, dgst string) ([]Manifest, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.repo(repo, false)
	if r == nil {
		return nil, nil
	}
	var out []Manifest
	for _, mf := range r.manifests {
		if mf.Subject == dgst {
			mf.Content = slices.Clone(mf.Content)
			out = append(out, mf)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// Events returns how many manifest puts and deletes have been recorded.
func (m *MemoryMetadata) Events() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.events
}
