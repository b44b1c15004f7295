// Package catalog holds the list of releases an upgrade may pass through.
//
// A Catalog is immutable once built: its releases are valid SemVer 2.0
// versions, unique by precedence, sorted ascending. It indexes them by major
// and minor so that the questions the planner asks ("latest patch of 2.3",
// "earliest minor of 3.x") cost a map lookup, whatever the catalog's size.
//
// Three sources build one: Builtin (the reference registry's release history,
// the single source of truth for it), a YAML or JSON file (Load), and a plain
// list of versions (New). Pre-releases are kept and reported, but the lookup
// helpers only ever return generally available (GA) releases.
package catalog
