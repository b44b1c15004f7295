package etcd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"time"
)

// BackupInfo describes a backup Backup wrote.
type BackupInfo struct {
	// Endpoint is the member the snapshot was taken from.
	Endpoint string `json:"endpoint"`
	// Revision is the key-value revision the snapshot holds, as the
	// stream says (etcd 3.6 and later); from 3.5, whose stream does not
	// say, the member's revision just before the snapshot began, which
	// the snapshot holds at least.
	Revision int64 `json:"revision"`
	// Size is the number of bytes written, checksum included.
	Size int64 `json:"size"`
	// Version is the storage version the stream reports, MAJOR.MINOR.0:
	// the etcd minor a restore should use (etcd 3.6 and later; "" from
	// 3.5).
	Version string `json:"version,omitempty"`
}

// Backup streams a consistent snapshot of the member at endpoint into w:
// the member's whole bbolt database at one revision followed by its
// SHA-256, byte for byte what `etcdctl snapshot save` writes, so
// `etcdutl snapshot restore` accepts it. Backup checks the checksum as the
// bytes pass; a stream that ends early or does not match returns an error
// wrapping ErrBadSnapshot (w then holds a partial copy the caller should
// discard). The snapshot has no time limit of its own: bound it with ctx.
func Backup(ctx context.Context, endpoint string, tlsConf *tls.Config, w io.Writer, log *slog.Logger) (BackupInfo, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	info := BackupInfo{Endpoint: endpoint}
	c, err := newClient([]string{endpoint}, tlsConf)
	if err != nil {
		return info, fmt.Errorf("back up etcd from %s: %w", endpoint, err)
	}
	defer c.Close()
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	st, err := c.Status(sctx, endpoint)
	cancel()
	if err != nil {
		return info, fmt.Errorf("back up etcd from %s: status: %w", endpoint, err)
	}
	resp, err := c.SnapshotWithVersion(ctx)
	if err != nil {
		return info, fmt.Errorf("back up etcd from %s: open snapshot stream: %w", endpoint, err)
	}
	defer resp.Snapshot.Close()
	info.Revision = resp.Header.GetRevision()
	if info.Revision == 0 {
		info.Revision = st.Header.GetRevision()
	}
	info.Version = resp.Version
	cw := &checksumWriter{w: w, h: sha256.New()}
	n, err := io.Copy(cw, resp.Snapshot)
	info.Size = n
	if err != nil {
		return info, fmt.Errorf("back up etcd from %s: copy snapshot after %d bytes: %w", endpoint, n, err)
	}
	if err := cw.check(); err != nil {
		return info, fmt.Errorf("back up etcd from %s: %w", endpoint, err)
	}
	log.Info("etcd backup written", "endpoint", endpoint, "revision", info.Revision, "bytes", n,
		"seconds", time.Since(start).Round(10*time.Millisecond).Seconds())
	return info, nil
}

// checksumWriter passes every byte to w and hashes all but the last
// sha256.Size bytes, which are the stream's checksum of the rest.
type checksumWriter struct {
	w    io.Writer
	h    hash.Hash
	tail []byte // the last sha256.Size bytes seen, not hashed yet
}

func (c *checksumWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		return n, err
	}
	buf := append(c.tail, p...)
	if len(buf) > sha256.Size {
		c.h.Write(buf[:len(buf)-sha256.Size])
		buf = buf[len(buf)-sha256.Size:]
	}
	c.tail = append(c.tail[:0:0], buf...)
	return n, nil
}

func (c *checksumWriter) check() error {
	if len(c.tail) < sha256.Size {
		return fmt.Errorf("%w: stream too short (%d bytes)", ErrBadSnapshot, len(c.tail))
	}
	if !bytes.Equal(c.h.Sum(nil), c.tail) {
		return fmt.Errorf("%w: checksum does not match", ErrBadSnapshot)
	}
	return nil
}
