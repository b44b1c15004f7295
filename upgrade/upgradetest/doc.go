// Package upgradetest provides an in-memory cluster for testing the
// upgrade engine: a fake driver.Driver (with ArtifactChecker and Freezer)
// and a fake upgrade.App over one simulated cluster.
//
// The simulation is driven by status probes, not by time: every call of
// App.Status is one tick, in which starting replicas come closer to
// answering and lagging replicas apply a few more revisions. A replica
// that restarts misses the writes committed while it is down and must
// catch up. The migration job is idempotent like the real one: it
// migrates from the stored schema up to the requested one and counts each
// schema it actually applied (Migrations), so a test can prove every
// migration ran exactly once however often the job ran.
//
// Faults: FailAt and HangAt make an operation fail or block (until its
// context ends) when it runs inside a named step (upgrade.StepFromContext);
// Freeze stops a replica dead (no answers, no catching up) until it is
// restarted or thawed; Stick keeps a replica answering but applying
// nothing until the cure named happens. Crashes are injected through
// upgrade.Knobs.
package upgradetest
