// Package traffic is a client that keeps reading and writing a registry
// cluster while it is upgraded, and proves afterwards that nothing written
// was lost.
//
// Writes push small images (a random layer each) under distinct tags;
// reads pull a tag written earlier. Each request goes to the next replica
// in turn; when that replica does not answer, the request fails over to the
// others, as a client behind a load balancer would. A request counts as
// failed only when no replica could serve it; every failover is counted too.
package traffic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ladder-dev/ladder/internal/pki"
)

// Client generates traffic against a set of replica base URLs.
type Client struct {
	URLs     []string
	Repo     string // repository, e.g. "demo/traffic"
	Password string // admin password, for pushes
	// TLS is how the client trusts the replicas (pki.ClientConfig); nil
	// for plain HTTP.
	TLS      *tls.Config
	Interval time.Duration
	Timeout  time.Duration
	Logger   *slog.Logger

	next    atomic.Uint64
	mu      sync.Mutex
	written map[string]v1.Hash // tag → manifest digest
	order   []string
	stats   Stats
}

// Stats counts the client's requests.
type Stats struct {
	Writes, Reads             int
	FailedWrites, FailedReads int
	// Failovers counts requests a replica could not serve that another did.
	Failovers int
	// LastError is the last failure seen (empty if none).
	LastError string
}

// Verification is the result of Verify.
type Verification struct {
	Tags    int
	Missing []string // "tag@replica" that did not resolve to the written digest
}

// Run generates traffic until ctx ends.
func (c *Client) Run(ctx context.Context) {
	if c.Interval == 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.Timeout == 0 {
		c.Timeout = 3 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.mu.Lock()
	if c.written == nil {
		c.written = map[string]v1.Hash{}
	}
	c.mu.Unlock()
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if i%2 == 0 {
			c.write(ctx, fmt.Sprintf("t-%06d", i/2))
		} else {
			c.read(ctx)
		}
	}
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Written returns the tags written, in order.
func (c *Client) Written() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.order...)
}

// Push writes one random image as repo:tag through the replica at base.
// tc is how the client trusts the replica (nil: plain HTTP).
func Push(ctx context.Context, tc *tls.Config, base, repo, tag, password string, timeout time.Duration) (v1.Hash, error) {
	img, err := random.Image(512, 1)
	if err != nil {
		return v1.Hash{}, err
	}
	ref, err := ref(base, repo, tag)
	if err != nil {
		return v1.Hash{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(pki.Transport(tc)),
		remote.WithAuth(&authn.Basic{Username: "admin", Password: password})); err != nil {
		return v1.Hash{}, err
	}
	return img.Digest()
}

// Resolve returns the digest repo:tag has on the replica at base.
func Resolve(ctx context.Context, tc *tls.Config, base, repo, tag string, timeout time.Duration) (v1.Hash, error) {
	ref, err := ref(base, repo, tag)
	if err != nil {
		return v1.Hash{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d, err := remote.Head(ref, remote.WithContext(ctx), remote.WithTransport(pki.Transport(tc)))
	if err != nil {
		return v1.Hash{}, err
	}
	return d.Digest, nil
}

// Readable reads repo:tag back whole from the replica at base: its
// manifest, which must have digest want, its config and every layer, each
// checked against its digest as it is read.
func Readable(ctx context.Context, tc *tls.Config, base, repo, tag string, want v1.Hash, timeout time.Duration) error {
	ref, err := ref(base, repo, tag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(pki.Transport(tc)))
	if err != nil {
		return err
	}
	got, err := img.Digest()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s:%s is %s, written as %s", repo, tag, got, want)
	}
	if _, err := img.RawConfigFile(); err != nil {
		return fmt.Errorf("read config of %s:%s: %w", repo, tag, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("read a layer of %s:%s: %w", repo, tag, err)
		}
	}
	return nil
}

func ref(base, repo, tag string) (name.Reference, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parse replica url %q: %w", base, err)
	}
	if u.Scheme == "https" {
		return name.NewTag(u.Host + "/" + repo + ":" + tag)
	}
	return name.NewTag(u.Host+"/"+repo+":"+tag, name.Insecure)
}

// each tries fn on the next replica, then on the others.
func (c *Client) each(fn func(base string) error) error {
	start := int(c.next.Add(1))
	var errs []error
	for k := range c.URLs {
		base := c.URLs[(start+k)%len(c.URLs)]
		err := fn(base)
		if err == nil {
			if k > 0 {
				c.mu.Lock()
				c.stats.Failovers += k
				c.mu.Unlock()
			}
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", base, err))
	}
	return errors.Join(errs...)
}

func (c *Client) write(ctx context.Context, tag string) {
	var dg v1.Hash
	err := c.each(func(base string) error {
		d, err := Push(ctx, c.TLS, base, c.Repo, tag, c.Password, c.Timeout)
		dg = d
		return err
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Writes++
	if err != nil {
		if ctx.Err() != nil {
			c.stats.Writes--
			return
		}
		c.stats.FailedWrites++
		c.stats.LastError = err.Error()
		c.Logger.Warn("write failed on every replica", "tag", tag, "err", err)
		return
	}
	c.written[tag] = dg
	c.order = append(c.order, tag)
}

func (c *Client) read(ctx context.Context) {
	c.mu.Lock()
	if len(c.order) == 0 {
		c.mu.Unlock()
		return
	}
	tag := c.order[int(c.next.Load())%len(c.order)]
	want := c.written[tag]
	c.mu.Unlock()
	err := c.each(func(base string) error {
		got, err := Resolve(ctx, c.TLS, base, c.Repo, tag, c.Timeout)
		if err == nil && got != want {
			return fmt.Errorf("tag %s resolves to %s, written as %s", tag, got, want)
		}
		return err
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Reads++
	if err != nil {
		if ctx.Err() != nil {
			c.stats.Reads--
			return
		}
		c.stats.FailedReads++
		c.stats.LastError = err.Error()
		c.Logger.Warn("read failed on every replica", "tag", tag, "err", err)
	}
}

// Verify checks that every tag written reads back whole, on every
// replica: the manifest it was written with, its config and its layers.
func (c *Client) Verify(ctx context.Context) Verification {
	c.mu.Lock()
	tags := append([]string(nil), c.order...)
	want := make(map[string]v1.Hash, len(c.written))
	for k, v := range c.written {
		want[k] = v
	}
	c.mu.Unlock()
	v := Verification{Tags: len(tags)}
	for _, tag := range tags {
		for _, base := range c.URLs {
			if err := Readable(ctx, c.TLS, base, c.Repo, tag, want[tag], 10*time.Second); err != nil {
				v.Missing = append(v.Missing, tag+"@"+base)
			}
		}
	}
	return v
}
