package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ladder-dev/ladder/internal/poll"
)

// basicTransport sends the admin's basic credentials with every request,
// as clients did before token authentication: the API root then answers
// 200 and go-containerregistry never asks for a token.
type basicTransport struct {
	next     http.RoundTripper
	user, pw string
}

func (b basicTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pw)
	return b.next.RoundTrip(r)
}

// TestMeasureAuthThroughput pushes and pulls through one replica of a live
// 3-replica cluster with go-containerregistry's client, logged in with a
// token (the challenge, then /auth/token) and with basic credentials on
// every request, and prints a table. With LADDER_REFERENCE_REGISTRY naming
// a distribution registry binary (go install
// github.com/distribution/distribution/v3/cmd/registry@v3.1.2), the same
// work runs against it too (filesystem storage, no auth). A measurement,
// not a check: it runs only with LADDER_MEASURE=1.
func TestMeasureAuthThroughput(t *testing.T) {
	if os.Getenv("LADDER_MEASURE") != "1" {
		t.Skip("measurement: set LADDER_MEASURE=1 to run")
	}
	e := newEnv(t)
	e.createCluster("authbench", "3.1.2")
	st := e.status("authbench")
	u, _ := url.Parse(st.Replicas[0].URL)
	pw := e.password("authbench")
	ctx := context.Background()
	type work struct {
		name   string
		layer  int64
		images int
	}
	refHost := ""
	if bin := os.Getenv("LADDER_REFERENCE_REGISTRY"); bin != "" {
		refHost = startReference(t, bin)
	}
	table := "WORK            CLIENTS  AUTH       PUSH MB/s  PUSH img/s  PULL MB/s  PULL img/s\n"
	for _, w := range []work{{"50x4x4KiB", 4 << 10, 50}, {"10x4x4MiB", 4 << 20, 10}} {
		imgs := make([]v1.Image, w.images)
		for i := range imgs {
			img, err := random.Image(w.layer, 4)
			if err != nil {
				t.Fatal(err)
			}
			imgs[i] = img
		}
		for _, clients := range []int{1, 8} {
			modes := []string{"basic", "token"}
			if refHost != "" {
				modes = append(modes, "reference")
			}
			for _, mode := range modes {
				opts := func() []remote.Option {
					tr := http.DefaultTransport.(*http.Transport).Clone()
					if mode != "reference" {
						tr.TLSClientConfig = e.tls("authbench") // the replicas speak HTTPS, verified by the cluster's CA
					}
					if mode == "reference" {
						return []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr)}
					}
					if mode == "basic" {
						return []remote.Option{remote.WithContext(ctx), remote.WithTransport(basicTransport{next: tr, user: "admin", pw: pw})}
					}
					return []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr),
						remote.WithAuth(&authn.Basic{Username: "admin", Password: pw})}
				}
				host := u.Host
				if mode == "reference" {
					host = refHost
				}
				repo := fmt.Sprintf("%s/bench/%s-%s-%d", host, mode, strings.ToLower(w.name), clients)
				run := func(f func(i int, o []remote.Option) error) time.Duration {
					start := time.Now()
					var wg sync.WaitGroup
					errs := make(chan error, clients)
					for c := range clients {
						wg.Add(1)
						go func() {
							defer wg.Done()
							// One client: one transport and, with tokens, one
							// token per repository and action, as a
							// long-lived client keeps them.
							o := opts()
							pusher, err := remote.NewPusher(o...)
							if err != nil {
								errs <- err
								return
							}
							puller, err := remote.NewPuller(o...)
							if err != nil {
								errs <- err
								return
							}
							o = append(o, remote.Reuse(pusher), remote.Reuse(puller))
							for i := c; i < len(imgs); i += clients {
								if err := f(i, o); err != nil {
									errs <- err
									return
								}
							}
						}()
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						t.Fatal(err)
					}
					return time.Since(start)
				}
				push := run(func(i int, o []remote.Option) error {
					ref, _ := name.NewTag(fmt.Sprintf("%s:t%d", repo, i), name.Insecure)
					return remote.Write(ref, imgs[i], o...)
				})
				pull := run(func(i int, o []remote.Option) error {
					ref, _ := name.NewTag(fmt.Sprintf("%s:t%d", repo, i), name.Insecure)
					img, err := remote.Image(ref, o...)
					if err != nil {
						return err
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
							return err
						}
					}
					return nil
				})
				mb := float64(w.images) * 4 * float64(w.layer) / 1e6
				table += fmt.Sprintf("%-15s %7d  %-9s  %9.1f  %10.1f  %9.1f  %10.1f\n", w.name, clients, mode,
					mb/push.Seconds(), float64(w.images)/push.Seconds(), mb/pull.Seconds(), float64(w.images)/pull.Seconds())
			}
		}
	}
	t.Log("\n" + table)
}

// startReference runs the distribution registry binary bin on a free
// loopback port with filesystem storage, until the test ends.
func startReference(t *testing.T, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	body := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := poll.For(context.Background(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("reference registry did not start: %v", err)
	}
	return addr
}
