package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestUpgradeRecord: one holder at a time, the journal written only by it
// and read by anyone, the lock free again once released or once its
// holder stops renewing it.
func TestUpgradeRecord(t *testing.T) {
	_, reps := startCluster(t, "record", "3.1.2", 1)
	ctx := context.Background()
	hc := &http.Client{Timeout: 5 * time.Second}
	base := reps[0].URL()

	first, err := TakeLock(ctx, hc, base, testPassword, UpgradeLock{Holder: "first", PID: 1, Host: "a"}, 30*time.Second)
	if err != nil || first.Lease == "" || first.TTL < 2 {
		t.Fatalf("TakeLock = %+v, %v", first, err)
	}
	held, err := TakeLock(ctx, hc, base, testPassword, UpgradeLock{Holder: "second"}, 30*time.Second)
	if !errors.Is(err, ErrLockHeld) || held.Holder != "first" {
		t.Fatalf("second TakeLock = %+v, %v; want ErrLockHeld naming first", held, err)
	}
	if _, err := TakeLock(ctx, hc, base, "wrong", UpgradeLock{Holder: "x"}, 30*time.Second); err == nil {
		t.Error("TakeLock with a wrong password succeeded")
	}

	recs := []json.RawMessage{json.RawMessage(`{"seq":1,"step":"plan"}`), json.RawMessage(`{"seq":2,"step":"run"}`)}
	if err := AppendRecords(ctx, hc, base, testPassword, first.Lease, recs); err != nil {
		t.Fatal(err)
	}
	// Appending again changes nothing; a record already there stays.
	if err := AppendRecords(ctx, hc, base, testPassword, first.Lease, []json.RawMessage{json.RawMessage(`{"seq":2,"step":"other"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := AppendRecords(ctx, hc, base, testPassword, "1234", recs); !errors.Is(err, ErrLockLost) {
		t.Errorf("append without the lock: %v, want ErrLockLost", err)
	}
	rec, err := ReadUpgrade(ctx, hc, base)
	if err != nil || rec.Lock == nil || rec.Lock.Holder != "first" || len(rec.Records) != 2 {
		t.Fatalf("ReadUpgrade = %+v, %v", rec, err)
	}
	var second struct{ Step string }
	if err := json.Unmarshal(rec.Records[1], &second); err != nil || second.Step != "run" {
		t.Errorf("record 2 = %s, want the first one appended", rec.Records[1])
	}
	if err := RenewLock(ctx, hc, base, testPassword, first.Lease); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseLock(ctx, hc, base, testPassword, first.Lease); err != nil {
		t.Fatal(err)
	}
	if err := RenewLock(ctx, hc, base, testPassword, first.Lease); !errors.Is(err, ErrLockLost) {
		t.Errorf("renew after release: %v, want ErrLockLost", err)
	}

	// A holder that stops renewing loses the lock when its lease ends.
	short, err := TakeLock(ctx, hc, base, testPassword, UpgradeLock{Holder: "short-lived"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the lease to expire", func() (bool, string) {
		l, err := TakeLock(ctx, hc, base, testPassword, UpgradeLock{Holder: "next"}, 30*time.Second)
		return err == nil, fmt.Sprintf("%+v %v", l, err)
	})
	if err := AppendRecords(ctx, hc, base, testPassword, short.Lease, recs); !errors.Is(err, ErrLockLost) {
		t.Errorf("append by the expired holder: %v, want ErrLockLost", err)
	}
}
