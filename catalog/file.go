package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ladder-dev/ladder/policy"
)

// fileEntry is one item of `releases:`: a bare version string, or an object.
type fileEntry struct {
	Version string `json:"version" yaml:"version"`
	Notes   string `json:"notes,omitempty" yaml:"notes,omitempty"`
	Schema  int    `json:"schema,omitempty" yaml:"schema,omitempty"`
}

func (e *fileEntry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		e.Version = n.Value
		return nil
	}
	type plain fileEntry
	return n.Decode((*plain)(e))
}

func (e *fileEntry) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &e.Version)
	}
	type plain fileEntry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode((*plain)(e))
}

type fileDoc struct {
	Releases []fileEntry `json:"releases" yaml:"releases"`
}

// Load reads a catalog file: YAML or JSON with a top-level `releases:` list.
// Entries are version strings or objects with `version`, optional `notes`
// and optional `schema`.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return Parse(path, data)
}

// Parse reads catalog data; source names it in errors. JSON is tried when
// the data starts with "{" or source ends in .json, YAML otherwise.
func Parse(source string, data []byte) (*Catalog, error) {
	var doc fileDoc
	trimmed := bytes.TrimSpace(data)
	if strings.EqualFold(filepath.Ext(source), ".json") || bytes.HasPrefix(trimmed, []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, source, err)
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, source, err)
		}
	}
	if len(doc.Releases) == 0 {
		return nil, fmt.Errorf("%w: %s: no releases: expected a top-level `releases:` list of versions such as 2.3.1", ErrInvalid, source)
	}
	rs := make([]Release, 0, len(doc.Releases))
	for i, e := range doc.Releases {
		v, err := policy.Parse(e.Version)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: releases[%d]: %w", ErrInvalid, source, i, err)
		}
		if e.Schema < 0 {
			return nil, fmt.Errorf("%w: %s: releases[%d] (%s): schema must be a positive number", ErrInvalid, source, i, v)
		}
		rs = append(rs, Release{Version: v, Notes: e.Notes, Schema: e.Schema})
	}
	return New(source, rs)
}
