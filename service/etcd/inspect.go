package etcd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// ErrUnreachable: a member did not answer at the client URL given for it.
var ErrUnreachable = errors.New("does not answer")

// Found is a running member as it describes itself and as the cluster's
// member list names it: what ladder needs to adopt it.
type Found struct {
	// Endpoint is the client URL it was asked at.
	Endpoint string `json:"endpoint"`
	ID       uint64 `json:"id"`
	// Name is the member's --name.
	Name string `json:"name"`
	// Version is the member's server version.
	Version  string   `json:"version"`
	PeerURLs []string `json:"peer_urls"`
	Learner  bool     `json:"learner,omitempty"`
}

// Inspect asks the member at each endpoint who it is (its id, name,
// version and peer URLs) and checks that the endpoints are the whole
// cluster: every member of the cluster's member list is asked, once. An
// endpoint that does not answer is named in an error wrapping
// ErrUnreachable.
func Inspect(ctx context.Context, endpoints []string, tlsConf *tls.Config) ([]Found, error) {
	out := make([]Found, len(endpoints))
	var list []Found
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	hc := &http.Client{Transport: tr, Timeout: 2 * ProbeTimeout}
	defer hc.CloseIdleConnections()
	for i, ep := range endpoints {
		// A plain request first: it fails at once, with the reason, where
		// the gRPC client would wait out its timeout.
		if err := answers(ctx, hc, ep); err != nil {
			return nil, &UnreachableError{Endpoint: ep, Err: err}
		}
		c, err := newClient([]string{ep}, tlsConf)
		if err != nil {
			return nil, &UnreachableError{Endpoint: ep, Err: err}
		}
		rctx, cancel := context.WithTimeout(ctx, 3*ProbeTimeout)
		st, err := c.Status(rctx, ep)
		if err == nil && list == nil {
			res, lerr := c.MemberList(rctx)
			if lerr != nil {
				err = lerr
			} else {
				for _, m := range res.Members {
					list = append(list, Found{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner})
				}
			}
		}
		cancel()
		_ = c.Close()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &UnreachableError{Endpoint: ep, Err: errors.New(lastLine(err.Error()))}
		}
		out[i] = Found{Endpoint: ep, ID: st.Header.MemberId, Version: st.Version}
	}
	seen := map[uint64]string{}
	for i := range out {
		j := slices.IndexFunc(list, func(m Found) bool { return m.ID == out[i].ID })
		if j < 0 {
			return nil, fmt.Errorf("the member at %s (id %x) is not in the cluster's member list", out[i].Endpoint, out[i].ID)
		}
		if prev, ok := seen[out[i].ID]; ok {
			return nil, fmt.Errorf("%s and %s are the same member (%s)", prev, out[i].Endpoint, list[j].Name)
		}
		seen[out[i].ID] = out[i].Endpoint
		out[i].Name, out[i].PeerURLs, out[i].Learner = list[j].Name, list[j].PeerURLs, list[j].Learner
	}
	var missing []string
	for _, m := range list {
		if _, ok := seen[m.ID]; !ok {
			name := m.Name
			if name == "" {
				name = fmt.Sprintf("%x (not started yet)", m.ID)
			}
			missing = append(missing, name+" "+strings.Join(m.PeerURLs, ","))
		}
	}
	if len(missing) > 0 {
		return out, &MissingMembersError{Missing: missing}
	}
	return out, nil
}

// UnreachableError names the endpoint that did not answer, and why.
type UnreachableError struct {
	Endpoint string
	Err      error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Endpoint, ErrUnreachable, e.Err)
}

func (e *UnreachableError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// MissingMembersError names members of the cluster that were not given:
// ladder upgrades a cluster whole or not at all.
type MissingMembersError struct {
	// Missing lists each member not given, by name and peer URLs.
	Missing []string
}

func (e *MissingMembersError) Error() string {
	return fmt.Sprintf("the cluster has members that were not given: %s", strings.Join(e.Missing, "; "))
}

// answers checks that an etcd server answers GET /version at ep.
func answers(ctx context.Context, hc *http.Client, ep string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(ep, "/")+"/version", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		return err
	}
	defer resp.Body.Close()
	var v struct {
		Server string `json:"etcdserver"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Server == "" {
		return fmt.Errorf("GET /version answered %s, not as etcd does", resp.Status)
	}
	return nil
}
