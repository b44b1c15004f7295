// Package upgrade is ladder's rolling-upgrade engine: it turns a plan's
// hops into named, journaled steps and runs them against a cluster through
// a driver.Driver, waiting on the cluster's Status, which the service's App
// reports, between steps. It never imports a concrete driver or service.
//
// # Steps
//
// A hop's steps are one ordered list of data, HopSteps: the engine runs
// it, and the dry run prints it. Every step has a stable ID, written and
// read as a StepRef (StepRef.String, ParseStep):
//
//	hop/2.1.4->2.2.5/preflight             replicas reachable, healthy, UI up, store settled,
//	                                        TO artifact present, stored schema not too new,
//	                                        every replica on FROM or TO
//	hop/2.1.4->2.2.5/backup                only for hops that migrate: store settled, then a
//	                                        snapshot via a healthy replica (the leader first)
//	                                        in Options.BackupDir (kept after the upgrade)
//	hop/2.1.4->2.2.5/roll/replica-2/replace  store settled, then replace the replica with TO
//	                                        (not when it already runs TO and is healthy)
//	hop/2.1.4->2.2.5/roll/replica-2/wait     replica healthy, UI up, on TO; store settled
//	hop/2.1.4->2.2.5/migrate               only for hops that migrate: run TO's migration job
//	                                        once, wait to settle, verify the stored schema
//	hop/2.1.4->2.2.5/finalize              store settled, every replica on TO: the hop is done
//
// Replicas are rolled one at a time, followers first and the leader last.
// The order is chosen when a hop's roll begins and journaled (a note of
// step hop/<id>/roll), so a resumed run rolls in the same order.
//
// # Journal and resume
//
// Each step journals an intent, acts, and journals done, each record synced
// before the engine goes on. Run opens an upgrade by journaling the plan
// (journal.PlanStep) and closes it after the last hop. Running again with
// the same target resumes the journaled plan: done steps are skipped
// (event step-skip), and an interrupted step is repeated: every step
// re-checks live state first, and the migration job is itself idempotent.
// A step's done record holds what it did and its Timing, the time spent
// in each activity inside it. Running with another target while an
// upgrade is unfinished is refused (*UnfinishedError). The upgrade lock is held for
// the whole of Run and released when it returns; the journal, not the
// lock, carries the resume state.
//
// # Waiting
//
// Every gate goes through one wait helper that polls App.Status, and
// judges each replica by one health rule, ReplicaStatus.Problem (healthy,
// UI answering, a voting member). A wait is
// progress-aware: while a replica that is behind keeps catching up (its
// applied revisions or index grow, it becomes healthy, fewer replicas lag)
// the wait goes on, up to Options.MaxWait (ErrWaitTimeout). When nothing
// moves for Options.StallAfter the wait ends at once with a *StallError
// naming the replica, the table and the gap.
//
// # Remediation
//
// On a stall, if Options.Remediate is set and the budget
// (Options.RemediationBudget rounds per Run) allows, the engine restarts the
// lagging replica and waits for it to be healthy and the store settled; if
// the store still does not settle it restarts every replica one at a time
// (each: healthy, UI, settled); then it retries the step. Every action is a
// journal note (step hop/<id>/remediate/round-N/...) and an event.
//
// # Output
//
// The engine never prints. It logs through Engine.Log and reports progress
// as Events to Engine.OnEvent; Summarize turns a journal into the summary
// that `status` prints.
package upgrade
