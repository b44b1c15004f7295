// Package journal keeps the durable record of an upgrade: what was
// planned, which steps were started and which finished, and who holds the
// cluster's upgrade lock.
//
// A journal is a directory per cluster. It holds:
//
//   - journal.jsonl: an append-only file of JSON lines, one Record each
//     ({seq, time, step, phase, detail}). Every Append writes one line and
//     syncs the file before it returns, so a record that Append reported
//     written survives a crash.
//   - lock: the upgrade lock (see Lock), present while an upgrade runs.
//
// Invariants:
//   - Seq numbers increase by one from 1 in file order.
//   - Only the holder of the lock appends. Readers (Open, Records, State)
//     never modify the file, so `status` can read a journal while an
//     upgrade writes it.
//   - A torn last line (a crash in the middle of a write) is tolerated: it is
//     ignored when reading and reported by Torn, and cut off when the lock is
//     next taken. A malformed line anywhere else is corruption (ErrCorrupt).
//
// Records mean: Intent — a step is about to act; Done — it finished;
// Failed — it returned an error; Note — something worth keeping happened
// (a decision such as the roll order, a remediation action). A step with
// an intent and no later done was interrupted or failed and is not
// finished.
//
// The record of step PlanStep opens an upgrade: its Intent holds the plan,
// its Done closes it. State interprets only the records since the last
// PlanStep intent, so one journal can hold a cluster's whole history of
// upgrades. The journal does not know what steps mean: package upgrade
// gives them their names and their order.
//
// The lock is a file created exclusively (written in full to a temporary
// name, then hard-linked into place, so it is never seen half written). It
// holds {holder, pid, host, since}. A second taker gets a *LockedError
// (errors.Is(err, ErrLocked)). A lock left by a process that no longer
// exists on this host is stale and is taken over; a lock from another host
// is never taken over automatically.
package journal
