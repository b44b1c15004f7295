package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ProbeTimeout bounds every request a probe makes, so a member that is
// frozen (SIGSTOP) or cut off is named as such within about two seconds.
const ProbeTimeout = 1500 * time.Millisecond

// Member is what one member answered to a probe, or why it did not.
type Member struct {
	// Endpoint is the client URL the member was asked on.
	Endpoint string `json:"endpoint"`
	// Name is the member's name from the member list ("" if no member
	// listed it).
	Name string `json:"name,omitempty"`
	// Reachable: the member answered the maintenance status request.
	Reachable bool `json:"reachable"`
	// Error says in one phrase, to be read after the member's name, why
	// it is not fully up ("" when every request succeeded).
	Error string `json:"error,omitempty"`

	// From Maintenance.Status (zero unless Reachable).
	ID               uint64   `json:"id,omitempty"`
	LeaderID         uint64   `json:"leader_id,omitempty"`
	RaftTerm         uint64   `json:"raft_term,omitempty"`
	RaftIndex        uint64   `json:"raft_index,omitempty"` // committed index
	RaftAppliedIndex uint64   `json:"raft_applied_index,omitempty"`
	Learner          bool     `json:"learner,omitempty"`
	Version          string   `json:"version,omitempty"`         // the member's server version
	StorageVersion   string   `json:"storage_version,omitempty"` // 3.6 and later
	DBSize           int64    `json:"db_size,omitempty"`
	DBSizeInUse      int64    `json:"db_size_in_use,omitempty"`
	Alarms           []string `json:"alarms,omitempty"` // StatusResponse.Errors
	// Revision is the member's current key-value revision.
	Revision int64 `json:"revision,omitempty"`

	// Healthy: GET /health?serializable=true answered 200 with health
	// "true" (no alarm; a local read works).
	Healthy bool `json:"healthy"`
	// Ready: GET /readyz answered 200.
	Ready bool `json:"ready"`
	// ClusterVersion is what GET /version reports as etcdcluster (the
	// cluster's version as this member knows it; "" if it did not say).
	ClusterVersion string `json:"cluster_version,omitempty"`
}

// Leader: the member is the raft leader.
func (m Member) Leader() bool { return m.Reachable && m.ID != 0 && m.ID == m.LeaderID }

// Report is a cluster as its members answered one probe.
type Report struct {
	Members []Member `json:"members"`
	// ClusterVersion is the cluster version the answering members report
	// (the lowest if they disagree, "" if none answered).
	ClusterVersion string `json:"cluster_version,omitempty"`
}

// Leader returns the member that leads, if one answered as leader.
func (r Report) Leader() (Member, bool) {
	for _, m := range r.Members {
		if m.Leader() {
			return m, true
		}
	}
	return Member{}, false
}

// Member returns the member asked on endpoint.
func (r Report) Member(endpoint string) (Member, bool) {
	for _, m := range r.Members {
		if m.Endpoint == endpoint {
			return m, true
		}
	}
	return Member{}, false
}

// Settled says whether the cluster is settled enough to take a member
// down: every member answered, is a voter (not a learner) and healthy,
// they agree on a leader that is one of them, and every member's applied
// index is within maxGap of the leader's. When it is not, why names the
// first member at fault and what is wrong. Pure: it only reads r.
func Settled(r Report, maxGap uint64) (ok bool, why string) {
	if len(r.Members) == 0 {
		return false, "no members to probe"
	}
	for _, m := range r.Members {
		switch {
		case !m.Reachable:
			return false, fmt.Sprintf("%s %s", m.label(), orDefault(m.Error, "does not answer"))
		case m.Learner:
			return false, fmt.Sprintf("%s is a learner, not a voting member", m.label())
		case !m.Healthy:
			return false, fmt.Sprintf("%s %s", m.label(), orDefault(m.Error, "is not healthy"))
		}
	}
	leaderID := r.Members[0].LeaderID
	for _, m := range r.Members[1:] {
		if m.LeaderID != leaderID {
			return false, fmt.Sprintf("members disagree on the leader (%s sees %x, %s sees %x)",
				r.Members[0].label(), leaderID, m.label(), m.LeaderID)
		}
	}
	if leaderID == 0 {
		return false, "no leader"
	}
	leader, found := r.Leader()
	if !found {
		return false, fmt.Sprintf("the leader %x is not among the probed members", leaderID)
	}
	for _, m := range r.Members {
		if m.RaftAppliedIndex+maxGap < leader.RaftAppliedIndex {
			return false, fmt.Sprintf("%s has applied index %d, %d behind the leader's %d",
				m.label(), m.RaftAppliedIndex, leader.RaftAppliedIndex-m.RaftAppliedIndex, leader.RaftAppliedIndex)
		}
	}
	return true, ""
}

func (m Member) label() string {
	if m.Name != "" {
		return m.Name
	}
	return m.Endpoint
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Prober asks a fixed set of members for their state. It keeps one client
// connection per member, so polling it is cheap. Safe for concurrent use.
type Prober struct {
	endpoints []string
	clients   []*clientv3.Client
	hc        *http.Client
	log       *slog.Logger
}

// NewProber returns a prober for the members at endpoints (client URLs
// such as http://127.0.0.1:2379), using tlsConf for https endpoints (nil
// for plain http). Close it when done.
func NewProber(endpoints []string, tlsConf *tls.Config, log *slog.Logger) (*Prober, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(endpoints) == 0 {
		return nil, errors.New("probe etcd: no member endpoints given")
	}
	p := &Prober{endpoints: append([]string(nil), endpoints...), log: log}
	for _, ep := range endpoints {
		c, err := newClient([]string{ep}, tlsConf)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("probe etcd: client for %s: %w", ep, err)
		}
		p.clients = append(p.clients, c)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	p.hc = &http.Client{Transport: tr, Timeout: ProbeTimeout}
	return p, nil
}

// newClient returns an etcd client for exactly endpoints: no endpoint
// sync, so it never wanders to another member, and a silent logger.
func newClient(endpoints []string, tlsConf *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: ProbeTimeout,
		TLS:         tlsConf,
		Logger:      zap.NewNop(),
	})
}

// Close releases the prober's connections.
func (p *Prober) Close() error {
	var errs []error
	for _, c := range p.clients {
		errs = append(errs, c.Close())
	}
	if p.hc != nil {
		p.hc.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// Probe asks every member at once for its status, member list, health,
// readiness and version, each request bounded by ProbeTimeout.
func Probe(ctx context.Context, endpoints []string, tlsConf *tls.Config, log *slog.Logger) (Report, error) {
	p, err := NewProber(endpoints, tlsConf, log)
	if err != nil {
		return Report{}, err
	}
	defer p.Close()
	return p.Probe(ctx), nil
}

// endpoint request kinds, for diagnosis.
const (
	reqStatus = iota
	reqHealth
	reqReady
	reqVersion
	reqMembers
	nReq
)

var reqNames = [nReq]string{"status", "health", "readyz", "version", "member list"}

type memberAnswer struct {
	m    Member
	list []listed // the member list this member answered
	errs [nReq]error
}

// listed is one entry of a member list.
type listed struct {
	id         uint64
	name       string
	clientURLs []string
}

// Probe asks every member at once for its status, member list, health,
// readiness and version, each request bounded by ProbeTimeout, and
// returns what they answered. It never fails: a member that could not be
// asked says why in its Error.
func (p *Prober) Probe(ctx context.Context) Report {
	answers := make([]memberAnswer, len(p.endpoints))
	var wg sync.WaitGroup
	for i, ep := range p.endpoints {
		a := &answers[i]
		a.m.Endpoint = ep
		var mu sync.Mutex
		c := p.clients[i]
		base := strings.TrimRight(ep, "/")
		run := func(kind int, f func(ctx context.Context) error) {
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
				defer cancel()
				err := f(rctx)
				if err != nil {
					mu.Lock()
					a.errs[kind] = err
					mu.Unlock()
				}
			})
		}
		run(reqStatus, func(ctx context.Context) error {
			st, err := c.Status(ctx, ep)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			a.m.Reachable = true
			a.m.ID = st.Header.GetMemberId()
			a.m.Revision = st.Header.GetRevision()
			a.m.LeaderID = st.Leader
			a.m.RaftTerm = st.RaftTerm
			a.m.RaftIndex = st.RaftIndex
			a.m.RaftAppliedIndex = st.RaftAppliedIndex
			a.m.Learner = st.IsLearner
			a.m.Version = st.Version
			a.m.StorageVersion = st.StorageVersion
			a.m.DBSize = st.DbSize
			a.m.DBSizeInUse = st.DbSizeInUse
			a.m.Alarms = st.Errors
			return nil
		})
		run(reqMembers, func(ctx context.Context) error {
			ml, err := c.MemberList(ctx, clientv3.WithSerializable())
			if err != nil {
				return err
			}
			var list []listed
			for _, mm := range ml.Members {
				list = append(list, listed{id: mm.ID, name: mm.Name, clientURLs: mm.ClientURLs})
			}
			mu.Lock()
			a.list = list
			mu.Unlock()
			return nil
		})
		run(reqHealth, func(ctx context.Context) error {
			var h struct {
				Health string `json:"health"`
				Reason string `json:"reason"`
			}
			code, body, err := p.get(ctx, base+"/health?serializable=true", &h)
			if err != nil {
				return err
			}
			if code != http.StatusOK || h.Health != "true" {
				return fmt.Errorf("%w: HTTP %d %s", errUnhealthy, code, orDefault(h.Reason, strings.TrimSpace(body)))
			}
			mu.Lock()
			a.m.Healthy = true
			mu.Unlock()
			return nil
		})
		run(reqReady, func(ctx context.Context) error {
			code, body, err := p.get(ctx, base+"/readyz", nil)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("%w: HTTP %d %s", errUnhealthy, code, lastLine(body))
			}
			mu.Lock()
			a.m.Ready = true
			mu.Unlock()
			return nil
		})
		run(reqVersion, func(ctx context.Context) error {
			var v struct {
				Server  string `json:"etcdserver"`
				Cluster string `json:"etcdcluster"`
			}
			code, _, err := p.get(ctx, base+"/version", &v)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("HTTP %d", code)
			}
			mu.Lock()
			a.m.ClusterVersion = v.Cluster
			mu.Unlock()
			return nil
		})
	}
	wg.Wait()

	// Name members from any member list, by id or, for a member that did
	// not answer, by client URL.
	byID := map[uint64]listed{}
	byURL := map[string]listed{}
	for _, a := range answers {
		for _, l := range a.list {
			if l.name == "" {
				continue // started, not yet published
			}
			byID[l.id] = l
			for _, u := range l.clientURLs {
				byURL[strings.TrimRight(u, "/")] = l
			}
		}
	}
	r := Report{Members: make([]Member, 0, len(answers))}
	for _, a := range answers {
		m := a.m
		if l, ok := byID[m.ID]; ok && m.ID != 0 {
			m.Name = l.name
		} else if l, ok := byURL[strings.TrimRight(m.Endpoint, "/")]; ok {
			m.Name = l.name
			if m.ID == 0 {
				m.ID = l.id
			}
		}
		m.Error = diagnose(a.errs)
		if m.Error != "" {
			p.log.Debug("etcd member not fully up", "endpoint", m.Endpoint, "why", m.Error)
		}
		if m.ClusterVersion != "" && (r.ClusterVersion == "" || versionLess(m.ClusterVersion, r.ClusterVersion)) {
			r.ClusterVersion = m.ClusterVersion
		}
		r.Members = append(r.Members, m)
	}
	return r
}

var errUnhealthy = errors.New("unhealthy")

// diagnose says in one phrase why a member is not fully up: it does not
// answer in time, refuses connections, or which requests failed how.
func diagnose(errs [nReq]error) string {
	var failed, timeouts, refused int
	var tlsErr error
	for _, err := range errs {
		if err == nil {
			continue
		}
		failed++
		if tlsErr == nil && isTLSError(err) {
			tlsErr = err
		}
		var ne net.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
			timeouts++
		case errors.Is(err, syscall.ECONNREFUSED):
			refused++
		}
	}
	switch {
	case failed == 0:
		return ""
	case refused > 0 && refused+timeouts == failed:
		// gRPC waits for a connection until its deadline, so a member that
		// is down shows refused HTTP requests next to timed-out gRPC ones.
		return "refuses connections (not running, or not listening yet)"
	case timeouts == failed:
		return fmt.Sprintf("does not answer within %s (frozen or overloaded?)", ProbeTimeout)
	case tlsErr != nil:
		// gRPC hides the handshake error behind its deadline; HTTP shows it.
		return "fails the TLS handshake (check the CA and the client certificate): " + tlsErr.Error()
	}
	var parts []string
	for i, err := range errs {
		if err != nil {
			parts = append(parts, reqNames[i]+": "+err.Error())
		}
	}
	if errs[reqStatus] == nil && errs[reqVersion] == nil {
		return "is unhealthy: " + strings.Join(parts, "; ")
	}
	return "fails: " + strings.Join(parts, "; ")
}

// isTLSError reports whether err is a failed TLS handshake: an alert from
// the member (such as "certificate required"), a certificate ladder does
// not trust, or TLS spoken to a plain-HTTP port.
func isTLSError(err error) bool {
	// A TLS alert from the peer arrives as a *net.OpError "remote error".
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true
	}
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	var header tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	return errors.As(err, &alert) || errors.As(err, &verify) || errors.As(err, &header) ||
		errors.As(err, &unknown) || errors.As(err, &host)
}

// get fetches url; when v is not nil and the body is JSON it is decoded
// into v. It returns the status code and the body text.
func (p *Prober) get(ctx context.Context, url string, v any) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp.StatusCode, "", err
	}
	if v != nil {
		_ = json.Unmarshal(body, v)
	}
	return resp.StatusCode, string(body), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
