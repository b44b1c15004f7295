// Package plan finds the shortest supported chain of hops from one release
// to another over a catalog.
//
// The chain follows the seed's rules: every intermediate stop is the latest
// GA patch of its minor (bug fixes come free); minors are climbed one at a
// time; before a major hop the chain reaches the latest release of the
// current major (a recommendation: when the catalog lacks a minor on the way
// the major hop goes from where the chain is, and its reason says so); a
// major hop lands on the earliest available minor of the next major. A pre-release is never an intermediate stop, and only the
// target when the caller allows it.
//
// Plan is pure and deterministic: no I/O, the same inputs give the same
// hops, and every hop is itself a supported transition (policy.Classify
// finds no mandatory objection). Each hop says why its stop exists.
package plan
