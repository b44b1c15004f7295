package registry

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/ladder-dev/ladder/registry/oci"
)

// repoRow is a row of the repositories table.
type repoRow struct {
	// ID is the opaque id of schema 1 (also kept by later schemas).
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	// Namespace is the first path component of Name (schema >= 2; "" when
	// the name has one component).
	Namespace   string    `json:"namespace,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	ManifestSeq int64     `json:"manifest_seq,omitempty"`
	// SizeBytes is the sum of the sizes of the blobs linked to the
	// repository (schema >= 6; nil before).
	SizeBytes *int64 `json:"size_bytes,omitempty"`
}

// manifestRow is a row of the manifests table.
type manifestRow struct {
	Repo         string    `json:"repo"`
	Digest       string    `json:"digest"`
	MediaType    string    `json:"media_type"`
	Size         int64     `json:"size"`
	Content      []byte    `json:"content"`
	Blobs        []string  `json:"blobs,omitempty"`
	Children     []string  `json:"children,omitempty"`
	Subject      string    `json:"subject,omitempty"`
	ArtifactType string    `json:"artifact_type,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	// Seq is the repository's push sequence (schema < 5).
	Seq int64 `json:"seq,omitempty"`
}

func (m manifestRow) manifest() oci.Manifest {
	return oci.Manifest{Digest: m.Digest, MediaType: m.MediaType, Size: m.Size, Content: m.Content,
		Blobs: m.Blobs, Children: m.Children, Subject: m.Subject, ArtifactType: m.ArtifactType}
}

// tagRow is a row of the tags table.
type tagRow struct {
	Repo   string `json:"repo"`
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
	// PushedAt is when the tag last moved (schema >= 4).
	PushedAt *time.Time `json:"pushed_at,omitempty"`
	// MediaType is the tagged manifest's media type (schema >= 7).
	MediaType string `json:"media_type,omitempty"`
}

// blobRow is a row of the global blobs table of schemas 1 and 2.
type blobRow struct {
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

// linkRow is a row of blob_repository (schema >= 3).
type linkRow struct {
	Repo     string    `json:"repo"`
	Digest   string    `json:"digest"`
	Size     int64     `json:"size"`
	LinkedAt time.Time `json:"linked_at"`
}

// eventRow is a row of the events table.
type eventRow struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"` // push, tag, untag, delete, link, unlink
	Repo   string    `json:"repo"`
	Digest string    `json:"digest,omitempty"`
	Tag    string    `json:"tag,omitempty"`
}

// replicaRow is a row of the replicas table, written by each replica at start.
type replicaRow struct {
	ID        string    `json:"id"`
	Release   string    `json:"release"`
	HTTPURL   string    `json:"http_url"`
	ClientURL string    `json:"client_url"`
	PeerURL   string    `json:"peer_url"`
	StartedAt time.Time `json:"started_at"`
}

// namespaceOf is the first path component of a multi-component name.
func namespaceOf(name string) string {
	if i := strings.IndexByte(name, '/'); i > 0 {
		return name[:i]
	}
	return ""
}

// descriptorSizes reads the sizes of the config, layers and blobs a manifest
// references, from its content. Unknown shapes give an empty map.
func descriptorSizes(content []byte) map[string]int64 {
	type desc struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	}
	var doc struct {
		Config *desc  `json:"config"`
		Layers []desc `json:"layers"`
		Blobs  []desc `json:"blobs"`
	}
	sizes := map[string]int64{}
	if json.Unmarshal(content, &doc) != nil {
		return sizes
	}
	if doc.Config != nil && doc.Config.Digest != "" {
		sizes[doc.Config.Digest] = doc.Config.Size
	}
	for _, l := range append(doc.Layers, doc.Blobs...) {
		if l.Digest != "" {
			sizes[l.Digest] = l.Size
		}
	}
	return sizes
}
