package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// countingTransport counts requests and response bytes.
type countingTransport struct {
	next         http.RoundTripper
	requests, in atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.ContentLength > 0 {
		c.in.Add(resp.ContentLength)
	}
	return resp, err
}

// TestMeasureOCIThroughput pushes and pulls images through one replica of
// a live 3-replica cluster with go-containerregistry's client, and reports
// requests/s and MB/s. It is a measurement, not a check: it runs only with
// LADDER_MEASURE=1.
func TestMeasureOCIThroughput(t *testing.T) {
	if os.Getenv("LADDER_MEASURE") != "1" {
		t.Skip("measurement: set LADDER_MEASURE=1 to run")
	}
	e := newEnv(t)
	e.createCluster("oci", "3.1.2")
	st := e.status("oci")
	u, _ := url.Parse(st.Replicas[0].URL)
	pw := e.password("oci")
	ctx := context.Background()
	// The replicas speak HTTPS, verified by the cluster's CA.
	transport := func() *http.Transport {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = e.tls("oci")
		return tr
	}
	for _, size := range []struct {
		name   string
		layer  int64
		images int
	}{{"4x4KiB", 4 << 10, 200}, {"4x1MiB", 1 << 20, 40}} {
		imgs := make([]v1.Image, size.images)
		for i := range imgs {
			img, err := random.Image(size.layer, 4)
			if err != nil {
				t.Fatal(err)
			}
			imgs[i] = img
		}
		ct := &countingTransport{next: transport()}
		auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: pw})
		start := time.Now()
		for i, img := range imgs {
			ref, err := name.NewTag(fmt.Sprintf("%s/bench/%s:t%d", u.Host, strings.ToLower(size.name), i), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(ct), auth); err != nil {
				t.Fatal(err)
			}
		}
		push := time.Since(start)
		bytes := float64(size.images) * 4 * float64(size.layer)
		t.Logf("push %s: %d images in %s: %.0f requests/s, %.1f MB/s, %.1f ms/image",
			size.name, size.images, push.Round(time.Millisecond), float64(ct.requests.Load())/push.Seconds(),
			bytes/push.Seconds()/1e6, push.Seconds()*1000/float64(size.images))

		ct = &countingTransport{next: transport()}
		start = time.Now()
		for i := range imgs {
			ref, err := name.NewTag(fmt.Sprintf("%s/bench/%s:t%d", u.Host, strings.ToLower(size.name), i), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(ct))
			if err != nil {
				t.Fatal(err)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				rc, err := l.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					t.Fatal(err)
				}
				rc.Close()
			}
		}
		pull := time.Since(start)
		t.Logf("pull %s: %d images in %s: %.0f requests/s, %.1f MB/s, %.1f ms/image",
			size.name, size.images, pull.Round(time.Millisecond), float64(ct.requests.Load())/pull.Seconds(),
			float64(ct.in.Load())/pull.Seconds()/1e6, pull.Seconds()*1000/float64(size.images))
	}
}
