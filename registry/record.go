package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The upgrade record is what the tool that upgrades a cluster keeps in the
// cluster itself, so that whoever runs it, from wherever, sees the same
// upgrade and only one runs at a time:
//
//   - a lock, a key bound to a store lease that its holder renews: when the
//     holder dies its lease expires and the lock is free again;
//   - a journal, records appended in sequence and never changed, that only
//     the lock's holder may write.
//
// The registry does not read what the records say; its web UI shows them.
// They live outside the tables, so they never hold up a table's readiness
// nor take part in a migration.
const (
	recordRoot    = "/ladder/upgrade/"
	lockKey       = recordRoot + "lock"
	journalPrefix = recordRoot + "journal/"
)

// ErrLockHeld means the upgrade lock is held by someone else.
var ErrLockHeld = errors.New("upgrade lock held")

// ErrLockLost means the lease of the upgrade lock is gone: it expired, or
// was revoked.
var ErrLockLost = errors.New("upgrade lock lost")

// UpgradeLock is who holds the upgrade lock.
type UpgradeLock struct {
	Holder string    `json:"holder"`
	PID    int       `json:"pid"`
	Host   string    `json:"host"`
	Since  time.Time `json:"since"`
	// Lease is the store lease the lock is bound to, in hex.
	Lease string `json:"lease,omitempty"`
	// TTL is the lease's time to live, in seconds.
	TTL int64 `json:"ttl_seconds,omitempty"`
}

// UpgradeRecord is GET /api/v1/upgrade: the lock, if held, and the
// journal's records, raw, in sequence.
type UpgradeRecord struct {
	Lock    *UpgradeLock      `json:"lock"`
	Records []json.RawMessage `json:"records"`
}

type lockRequest struct {
	UpgradeLock
	TTL int64 `json:"ttl_seconds"`
}

type leaseRequest struct {
	Lease   string            `json:"lease"`
	Records []json.RawMessage `json:"records,omitempty"`
}

// journalRecord is the part of a record the registry reads: its sequence.
type journalRecord struct {
	Seq int64 `json:"seq"`
}

func recordKey(seq int64) string { return fmt.Sprintf("%s%016d", journalPrefix, seq) }

// client returns the replica's store client, or answers 503.
func (r *Replica) storeClient(w http.ResponseWriter) *clientv3.Client {
	cli := r.cli.Load()
	if cli == nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": ErrNotReady.Error()})
	}
	return cli
}

// requireAdmin answers 401 unless the request carries the credentials of
// the admin or of a user with the admin role (429 after too many failed
// logins).
func (r *Replica) requireAdmin(w http.ResponseWriter, req *http.Request) bool {
	user, pass, ok := req.BasicAuth()
	if ok {
		role, err := r.auth.login(req.Context(), user, pass, remoteHost(req))
		var te *throttledError
		if errors.As(err, &te) {
			w.Header().Set("Retry-After", fmt.Sprint(max(int(te.wait.Seconds()), 1)))
			writeJSONResponse(w, http.StatusTooManyRequests, map[string]string{"error": "too many failed logins: try again later"})
			return false
		}
		if err == nil && role == RoleAdmin {
			return true
		}
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="ladder-registry"`)
	writeJSONResponse(w, http.StatusUnauthorized, map[string]string{"error": "admin credentials required"})
	return false
}

// adminRequest checks an admin request to the upgrade record: the admin's
// credentials, a store to write to, and the body decoded into v (when v is
// not nil). It answers the request and returns nil when one is missing.
func (r *Replica) adminRequest(w http.ResponseWriter, req *http.Request, v any) *clientv3.Client {
	if !r.requireAdmin(w, req) {
		return nil
	}
	cli := r.storeClient(w)
	if cli == nil || (v != nil && !decodeBody(w, req, v)) {
		return nil
	}
	return cli
}

func decodeBody(w http.ResponseWriter, req *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(req.Body, 16<<20)).Decode(v); err != nil {
		writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": "decode request: " + err.Error()})
		return false
	}
	return true
}

// handleLock takes the upgrade lock: a lease of the asked TTL, and the
// lock key bound to it if no one holds it. 409 names the holder.
func (r *Replica) handleLock(w http.ResponseWriter, req *http.Request) {
	var lr lockRequest
	cli := r.adminRequest(w, req, &lr)
	if cli == nil {
		return
	}
	if lr.Holder == "" || lr.TTL < 2 || lr.TTL > 3600 {
		writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": "a holder and a ttl_seconds of 2 to 3600 are required"})
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	lease, err := cli.Grant(ctx, lr.TTL)
	if err != nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "grant lease: " + err.Error()})
		return
	}
	lock := lr.UpgradeLock
	lock.Lease, lock.TTL = strconv.FormatInt(int64(lease.ID), 16), lease.TTL
	if lock.Since.IsZero() {
		lock.Since = time.Now().UTC().Truncate(time.Second)
	}
	b, _ := json.Marshal(lock)
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(lockKey), "=", 0)).
		Then(clientv3.OpPut(lockKey, string(b), clientv3.WithLease(lease.ID))).
		Else(clientv3.OpGet(lockKey)).Commit()
	if err != nil {
		_, _ = cli.Revoke(context.WithoutCancel(ctx), lease.ID)
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "take lock: " + err.Error()})
		return
	}
	if !resp.Succeeded {
		_, _ = cli.Revoke(context.WithoutCancel(ctx), lease.ID)
		var held UpgradeLock
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			_ = json.Unmarshal(kvs[0].Value, &held)
		}
		writeJSONResponse(w, http.StatusConflict, map[string]any{"error": ErrLockHeld.Error(), "lock": held})
		return
	}
	r.log.Info("upgrade lock taken", "holder", lock.Holder, "host", lock.Host, "ttl", lock.TTL)
	writeJSONResponse(w, http.StatusOK, lock)
}

func parseLease(s string) (clientv3.LeaseID, error) {
	n, err := strconv.ParseInt(s, 16, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: lease %q", ErrInvalid, s)
	}
	return clientv3.LeaseID(n), nil
}

// handleRenew renews the lock's lease once; 410 when it is gone.
func (r *Replica) handleRenew(w http.ResponseWriter, req *http.Request) {
	var lr leaseRequest
	cli := r.adminRequest(w, req, &lr)
	if cli == nil {
		return
	}
	id, err := parseLease(lr.Lease)
	if err != nil {
		writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	resp, err := cli.KeepAliveOnce(ctx, id)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		writeJSONResponse(w, http.StatusGone, map[string]string{"error": ErrLockLost.Error()})
	case err != nil:
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "renew lease: " + err.Error()})
	default:
		writeJSONResponse(w, http.StatusOK, map[string]int64{"ttl_seconds": resp.TTL})
	}
}

// handleUnlock releases the lock by revoking its lease.
func (r *Replica) handleUnlock(w http.ResponseWriter, req *http.Request) {
	cli := r.adminRequest(w, req, nil)
	if cli == nil {
		return
	}
	id, err := parseLease(req.URL.Query().Get("lease"))
	if err != nil {
		writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	if _, err := cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "revoke lease: " + err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleAppend appends journal records, each under its sequence number,
// for the holder of the lock only. A record already there is left as it
// is: appending is safe to repeat.
func (r *Replica) handleAppend(w http.ResponseWriter, req *http.Request) {
	var lr leaseRequest
	cli := r.adminRequest(w, req, &lr)
	if cli == nil {
		return
	}
	id, err := parseLease(lr.Lease)
	if err != nil {
		writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	ops := make([]clientv3.Op, 0, len(lr.Records))
	for _, raw := range lr.Records {
		var jr journalRecord
		if err := json.Unmarshal(raw, &jr); err != nil || jr.Seq < 1 {
			writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": "a record needs a seq of 1 or more"})
			return
		}
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(recordKey(jr.Seq)), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(recordKey(jr.Seq), string(raw))}, nil))
	}
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(lockKey), "=", id)).Then(ops...).Commit()
	switch {
	case err != nil:
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "append records: " + err.Error()})
	case !resp.Succeeded:
		writeJSONResponse(w, http.StatusConflict, map[string]string{"error": ErrLockLost.Error() + ": appending needs the lock"})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// handleUpgrade is GET /api/v1/upgrade: the lock and the journal. It is
// readable by anyone who can read the status: it holds no secret.
func (r *Replica) handleUpgrade(w http.ResponseWriter, req *http.Request) {
	cli := r.storeClient(w)
	if cli == nil {
		return
	}
	rec, err := readRecord(req.Context(), cli)
	if err != nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSONResponse(w, http.StatusOK, rec)
}

func readRecord(ctx context.Context, cli *clientv3.Client) (UpgradeRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*requestTimeout)
	defer cancel()
	resp, err := cli.Txn(ctx).Then(clientv3.OpGet(lockKey), clientv3.OpGet(journalPrefix, clientv3.WithPrefix())).Commit()
	if err != nil {
		return UpgradeRecord{}, fmt.Errorf("read the upgrade record: %w", err)
	}
	rec := UpgradeRecord{Records: []json.RawMessage{}}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		var l UpgradeLock
		if json.Unmarshal(kvs[0].Value, &l) == nil {
			rec.Lock = &l
		}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		rec.Records = append(rec.Records, json.RawMessage(kv.Value))
	}
	return rec, nil
}

// The client side, for the tool that upgrades the cluster.

// TakeLock asks the replica at base for the upgrade lock, held for ttl
// unless renewed. When someone else holds it, the error wraps ErrLockHeld
// and the holder is returned.
func TakeLock(ctx context.Context, hc *http.Client, base, adminPassword string, lock UpgradeLock, ttl time.Duration) (UpgradeLock, error) {
	var got UpgradeLock
	body := lockRequest{UpgradeLock: lock, TTL: int64(ttl.Round(time.Second) / time.Second)}
	code, raw, err := adminCall(ctx, hc, http.MethodPost, base+"/api/v1/upgrade/lock", adminPassword, body)
	if err != nil {
		return got, fmt.Errorf("take upgrade lock: %w", err)
	}
	switch code {
	case http.StatusOK:
		err = json.Unmarshal(raw, &got)
		return got, err
	case http.StatusConflict:
		var held struct {
			Lock UpgradeLock `json:"lock"`
		}
		_ = json.Unmarshal(raw, &held)
		return held.Lock, fmt.Errorf("take upgrade lock: %w by %s", ErrLockHeld, held.Lock.Holder)
	}
	return got, fmt.Errorf("take upgrade lock: %s", answer(code, raw))
}

// RenewLock renews the lock's lease once; an error wrapping ErrLockLost if
// it is gone.
func RenewLock(ctx context.Context, hc *http.Client, base, adminPassword, lease string) error {
	code, raw, err := adminCall(ctx, hc, http.MethodPost, base+"/api/v1/upgrade/lock/renew", adminPassword, leaseRequest{Lease: lease})
	switch {
	case err != nil:
		return fmt.Errorf("renew upgrade lock: %w", err)
	case code == http.StatusGone:
		return fmt.Errorf("renew upgrade lock: %w", ErrLockLost)
	case code != http.StatusOK:
		return fmt.Errorf("renew upgrade lock: %s", answer(code, raw))
	}
	return nil
}

// ReleaseLock gives the lock up.
func ReleaseLock(ctx context.Context, hc *http.Client, base, adminPassword, lease string) error {
	code, raw, err := adminCall(ctx, hc, http.MethodDelete, base+"/api/v1/upgrade/lock?lease="+lease, adminPassword, nil)
	if err != nil {
		return fmt.Errorf("release upgrade lock: %w", err)
	}
	if code != http.StatusNoContent {
		return fmt.Errorf("release upgrade lock: %s", answer(code, raw))
	}
	return nil
}

// AppendRecords appends journal records as the lock's holder.
func AppendRecords(ctx context.Context, hc *http.Client, base, adminPassword, lease string, records []json.RawMessage) error {
	code, raw, err := adminCall(ctx, hc, http.MethodPost, base+"/api/v1/upgrade/journal", adminPassword,
		leaseRequest{Lease: lease, Records: records})
	switch {
	case err != nil:
		return fmt.Errorf("append upgrade records: %w", err)
	case code == http.StatusConflict:
		return fmt.Errorf("append upgrade records: %w", ErrLockLost)
	case code != http.StatusNoContent:
		return fmt.Errorf("append upgrade records: %s", answer(code, raw))
	}
	return nil
}

// ReadUpgrade reads the upgrade record from the replica at base.
func ReadUpgrade(ctx context.Context, hc *http.Client, base string) (UpgradeRecord, error) {
	var rec UpgradeRecord
	if _, err := getJSON(ctx, hc, strings.TrimRight(base, "/")+"/api/v1/upgrade", &rec); err != nil {
		return rec, fmt.Errorf("read upgrade record: %w", err)
	}
	return rec, nil
}

func adminCall(ctx context.Context, hc *http.Client, method, url, adminPassword string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth("admin", adminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, raw, err
}

func answer(code int, raw []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return fmt.Sprintf("%d %s: %s", code, http.StatusText(code), e.Error)
	}
	return fmt.Sprintf("%d %s", code, http.StatusText(code))
}
