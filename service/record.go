package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/upgrade"
)

// LockTTL is how long the cluster's upgrade lock outlives its holder: the
// lease's time to live. The holder renews it every fifth of that, so that
// a replica that does not answer, or the store without a leader for a few
// seconds, does not cost it the lock.
const LockTTL = 15 * time.Second

// recordTimeout bounds a request to a replica's upgrade record.
const recordTimeout = 2 * time.Second

var _ upgrade.Recorder = RegistryApp{}

// Record implements upgrade.Recorder: the registry keeps the upgrade record
// in its store, through any replica's admin API. Nil without a way to list
// the replicas or the admin password.
func (a RegistryApp) Record() upgrade.ClusterRecord {
	if a.Replicas == nil || a.Password == "" {
		return nil
	}
	return registryRecord{a: a, good: &atomic.Value{}}
}

// registryRecord is upgrade.ClusterRecord over the registry's
// /api/v1/upgrade API, asking each replica in turn until one answers, the
// one that answered last first: a frozen replica costs one timeout, not one
// per request.
type registryRecord struct {
	a RegistryApp
	// good is the base URL of the replica that answered last.
	good *atomic.Value
}

// each calls fn with replicas' base URLs until one succeeds or fn returns
// an error that another replica would return too (stop).
func (r registryRecord) each(ctx context.Context, fn func(base string) error, stop func(error) bool) error {
	reps, err := r.a.Replicas(ctx)
	if err != nil {
		return err
	}
	if good, _ := r.good.Load().(string); good != "" {
		slices.SortStableFunc(reps, func(a, b driver.Replica) int {
			switch {
			case a.URL == good:
				return -1
			case b.URL == good:
				return 1
			}
			return 0
		})
	}
	var errs []error
	for _, rep := range reps {
		err := fn(rep.URL)
		if err == nil || stop(err) {
			if err == nil {
				r.good.Store(rep.URL)
			}
			return err
		}
		errs = append(errs, fmt.Errorf("%s: %w", rep.ID, err))
	}
	if len(errs) == 0 {
		return errors.New("the cluster has no replica")
	}
	return errors.Join(errs...)
}

func lockInfo(l registry.UpgradeLock) journal.LockInfo {
	return journal.LockInfo{Holder: l.Holder, PID: l.PID, Host: l.Host, Since: l.Since}
}

// Lock implements upgrade.ClusterRecord.
func (r registryRecord) Lock(ctx context.Context, holder journal.LockInfo) (upgrade.HeldLock, error) {
	var got registry.UpgradeLock
	err := r.each(ctx, func(base string) error {
		var err error
		got, err = registry.TakeLock(ctx, r.a.httpClient(recordTimeout), base, r.a.Password,
			registry.UpgradeLock{Holder: holder.Holder, PID: holder.PID, Host: holder.Host, Since: holder.Since}, LockTTL)
		return err
	}, func(err error) bool { return errors.Is(err, registry.ErrLockHeld) })
	var tookOver *journal.LockInfo
	if errors.Is(err, registry.ErrLockHeld) && journal.Stale(lockInfo(got)) && got.Lease != "" {
		// Its holder was a process of this machine, and is gone: end its
		// lease now rather than wait for it to run out.
		dead := lockInfo(got)
		tookOver = &dead
		_ = r.each(ctx, func(base string) error {
			return registry.ReleaseLock(ctx, r.a.httpClient(recordTimeout), base, r.a.Password, got.Lease)
		}, func(error) bool { return false })
		err = r.each(ctx, func(base string) error {
			var err error
			got, err = registry.TakeLock(ctx, r.a.httpClient(recordTimeout), base, r.a.Password,
				registry.UpgradeLock{Holder: holder.Holder, PID: holder.PID, Host: holder.Host, Since: holder.Since}, LockTTL)
			return err
		}, func(err error) bool { return errors.Is(err, registry.ErrLockHeld) })
	}
	if errors.Is(err, registry.ErrLockHeld) {
		return nil, &journal.LockedError{LockInfo: lockInfo(got),
			Frees: fmt.Sprintf("the cluster frees it at most %s after its holder stops", LockTTL)}
	}
	if err != nil {
		return nil, fmt.Errorf("take the cluster's upgrade lock: %w", err)
	}
	h := &heldRecord{r: r, lease: got.Lease, lost: make(chan struct{}), done: make(chan struct{}), tookOver: tookOver}
	go h.renew()
	return h, nil
}

// Read implements upgrade.ClusterRecord.
func (r registryRecord) Read(ctx context.Context) ([]journal.Record, *journal.LockInfo, error) {
	var rec registry.UpgradeRecord
	err := r.each(ctx, func(base string) error {
		var err error
		rec, err = registry.ReadUpgrade(ctx, r.a.httpClient(recordTimeout), base)
		return err
	}, func(error) bool { return false })
	if err != nil {
		return nil, nil, err
	}
	out := make([]journal.Record, 0, len(rec.Records))
	for _, raw := range rec.Records {
		var jr journal.Record
		if err := json.Unmarshal(raw, &jr); err != nil {
			return nil, nil, fmt.Errorf("read the cluster's journal: %w", err)
		}
		out = append(out, jr)
	}
	var lock *journal.LockInfo
	if rec.Lock != nil {
		l := lockInfo(*rec.Lock)
		lock = &l
	}
	return out, lock, nil
}

// heldRecord is the lock, held: its lease is renewed every third of its
// time to live, through any replica that answers, until released or lost.
type heldRecord struct {
	r        registryRecord
	lease    string
	tookOver *journal.LockInfo
	lost     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func (h *heldRecord) renew() {
	tick := time.NewTicker(LockTTL / 5)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-h.done:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), LockTTL/5)
		err := h.r.each(ctx, func(base string) error {
			return registry.RenewLock(ctx, h.r.a.httpClient(recordTimeout), base, h.r.a.Password, h.lease)
		}, func(err error) bool { return errors.Is(err, registry.ErrLockLost) })
		cancel()
		switch {
		case err == nil:
			last = time.Now()
		case errors.Is(err, registry.ErrLockLost), time.Since(last) >= LockTTL:
			close(h.lost)
			return
		}
	}
}

// Append implements upgrade.HeldLock.
func (h *heldRecord) Append(ctx context.Context, recs ...journal.Record) error {
	raws := make([]json.RawMessage, 0, len(recs))
	for _, rec := range recs {
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		raws = append(raws, b)
	}
	// A long journal goes in parts, each a request of its own.
	for len(raws) > 0 {
		n := min(len(raws), 100)
		part := raws[:n]
		raws = raws[n:]
		err := h.r.each(ctx, func(base string) error {
			return registry.AppendRecords(ctx, h.r.a.httpClient(recordTimeout), base, h.r.a.Password, h.lease, part)
		}, func(err error) bool { return errors.Is(err, registry.ErrLockLost) })
		if errors.Is(err, registry.ErrLockLost) {
			return fmt.Errorf("%w: %w", upgrade.ErrLockLost, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// TookOver implements upgrade.HeldLock.
func (h *heldRecord) TookOver() *journal.LockInfo { return h.tookOver }

// Lost implements upgrade.HeldLock.
func (h *heldRecord) Lost() <-chan struct{} { return h.lost }

// Release implements upgrade.HeldLock.
func (h *heldRecord) Release(ctx context.Context) error {
	h.stopOnce.Do(func() { close(h.done) })
	return h.r.each(ctx, func(base string) error {
		return registry.ReleaseLock(ctx, h.r.a.httpClient(recordTimeout), base, h.r.a.Password, h.lease)
	}, func(error) bool { return false })
}
