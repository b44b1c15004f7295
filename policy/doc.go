// Package policy states which version transitions ladder supports.
//
// It parses versions strictly (SemVer 2.0, an optional leading "v", nothing
// coerced) and classifies a transition FROM → TO into exactly one Kind: the
// rows of the seed's support table plus NoChange. Classify returns findings
// as data in two tiers, after kubeadm: mandatory findings (downgrades,
// skipped minors or majors, a major hop that misses the earliest minor, an
// unrequested pre-release target) can never be forced; skippable findings
// (recommendations) yield to --force. Only the caller turns findings into an
// error.
//
// The package does no I/O and imports no other ladder package: release
// knowledge reaches it through the small Releases interface, which
// catalog.Catalog satisfies.
package policy
