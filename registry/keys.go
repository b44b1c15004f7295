package registry

import (
	"fmt"
	"strings"
	"time"
)

// DB is the name of the registry's database (the key root).
const DB = "registry"

// Table names. Tables() lists them in display order.
const (
	TableProperties     = "properties"
	TableReplicas       = "replicas"
	TableRepositories   = "repositories"
	TableManifests      = "manifests"
	TableTags           = "tags"
	TableBlobs          = "blobs"
	TableBlobRepository = "blob_repository"
	TableEvents         = "events"
)

// Tables returns the registry's tables in display order. Each call returns
// a new slice.
func Tables() []string {
	return []string{TableProperties, TableReplicas, TableRepositories, TableManifests,
		TableTags, TableBlobs, TableBlobRepository, TableEvents}
}

const (
	keyRoot       = "/" + DB + "/"
	markerRoot    = keyRoot + ".rev/"
	schemaKey     = keyRoot + TableProperties + "/schema.version"
	createdKey    = keyRoot + TableProperties + "/cluster.created"
	checkpointKey = keyRoot + TableProperties + "/migration.checkpoint"
	historyPrefix = keyRoot + TableProperties + "/migration.done."
	// fenceKey, while it exists, holds writers back: a migration that
	// could not verify under their writes puts it, on a lease, for its
	// last pass.
	fenceKey = keyRoot + TableProperties + "/migration.fence"
)

// prefixOf is the key prefix of a table: /registry/<table>/.
func prefixOf(table string) string { return keyRoot + table + "/" }

// markerKey is the table's revision marker, put by every write to the table.
func markerKey(table string) string { return markerRoot + table }

// Repositories. Schema 1 keys rows by an opaque id; schema 2 and later by name.
func repoKeyByID(id string) string      { return prefixOf(TableRepositories) + "#" + id }
func repoKey(name string) string        { return prefixOf(TableRepositories) + name }
func repoIDPrefix() string              { return prefixOf(TableRepositories) + "#" }
func isRepoIDKey(key string) bool       { return strings.HasPrefix(key, repoIDPrefix()) }
func repoNameFromKey(key string) string { return strings.TrimPrefix(key, prefixOf(TableRepositories)) }

// Manifests. Schemas 1-4 key rows by the repository's push sequence,
// schema 5 and later by digest.
func manifestKeyBySeq(repo string, seq int64) string {
	return fmt.Sprintf("%s%s#%010d", prefixOf(TableManifests), repo, seq)
}
func manifestKey(repo, dgst string) string { return prefixOf(TableManifests) + repo + "@" + dgst }
func manifestSeqPrefix(repo string) string { return prefixOf(TableManifests) + repo + "#" }

// splitManifestKey returns the repository of a manifest key and whether the
// key uses the sequence layout (schema < 5).
func splitManifestKey(key string) (repo string, bySeq bool, ok bool) {
	rest := strings.TrimPrefix(key, prefixOf(TableManifests))
	if i := strings.IndexByte(rest, '@'); i > 0 {
		return rest[:i], false, true
	}
	if i := strings.LastIndexByte(rest, '#'); i > 0 {
		return rest[:i], true, true
	}
	return "", false, false
}

// Tags: /tags/<repo>:<tag>.
func tagKey(repo, tag string) string   { return prefixOf(TableTags) + repo + ":" + tag }
func tagPrefix(repo string) string     { return prefixOf(TableTags) + repo + ":" }
func blobKey(dgst string) string       { return prefixOf(TableBlobs) + dgst }
func linkKey(repo, dgst string) string { return prefixOf(TableBlobRepository) + repo + "@" + dgst }
func replicaKey(id string) string      { return prefixOf(TableReplicas) + id }

// eventKey orders events by time; the suffix keeps keys unique.
func eventKey(t time.Time, suffix string) string {
	return fmt.Sprintf("%s%019d-%s", prefixOf(TableEvents), t.UnixNano(), suffix)
}

// prefixEnd is the end of the key range of every key starting with p.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// validRepo checks a repository name enough to keep keys unambiguous: the
// OCI layer validates the full grammar.
func validRepo(name string) error {
	if name == "" || strings.ContainsAny(name, "#@: \t\n") || strings.HasPrefix(name, "/") {
		return fmt.Errorf("%w: repository name %q", ErrInvalid, name)
	}
	return nil
}

func validTag(tag string) error {
	if tag == "" || strings.ContainsAny(tag, "/@#: \t\n") {
		return fmt.Errorf("%w: tag %q", ErrInvalid, tag)
	}
	return nil
}
