// Package poll waits for a condition by asking it again at an interval:
// the one loop drivers use for their own short waits (a process to stop,
// a signal to be taken, a port to answer). Waits on the cluster's health
// are the upgrade engine's, not this.
package poll

import (
	"context"
	"time"
)

// Until calls cond at once and then every interval until it reports done
// or fails, or ctx ends. It returns cond's error, or ctx's cause.
func Until(ctx context.Context, interval time.Duration, cond func() (done bool, err error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done, err := cond()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// For is Until bounded by limit: the returned error wraps
// context.DeadlineExceeded when limit passes first.
func For(ctx context.Context, limit, interval time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return Until(ctx, interval, cond)
}
