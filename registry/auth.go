package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/ladder-dev/ladder/registry/oci"
)

// Authentication, as the distribution token specification has it: the OCI
// API answers an unauthenticated request 401 with a Bearer challenge naming
// the token endpoint (/auth/token on every replica); the endpoint checks the
// user and issues a short-lived JWT listing what it grants, signed with the
// cluster's key. The key and the users live in the replicated store (not in
// the registry's tables: keys under authRoot), so a token issued by one
// replica is good on every replica. Basic credentials on an API request are
// accepted too: ladder's own calls and some clients send them unasked.
//
// Failed logins are throttled per user and per remote address, by each
// replica on its own, with an exponential back-off; each replica keeps its
// recent failures for `ladder status`.

// Key layout of the authentication data.
const (
	authRoot       = "/ladder-auth/"
	authKeysKey    = authRoot + "keys"
	authSettingKey = authRoot + "settings"
	authUserPrefix = authRoot + "users/"
)

// Token lifetimes.
const (
	// TokenTTL is how long an access token is good for.
	TokenTTL = 5 * time.Minute
	// RefreshTTL is how long a refresh token (a client's saved login) is
	// good for, unless the key that signed it is rotated out first.
	RefreshTTL = 7 * 24 * time.Hour
	// keysFresh is how long a replica trusts its copy of the signing keys
	// and settings before reading them again; a token signed with a key it
	// does not know makes it read them at once.
	keysFresh = 10 * time.Second
)

// Roles a user may have.
const (
	RoleReadOnly  = "read-only"
	RoleReadWrite = "read-write"
	RoleAdmin     = "admin"
)

// AdminUser is the built-in administrator, whose password is the cluster's
// admin password.
const AdminUser = "admin"

// Roles lists the roles in increasing order of power.
func Roles() []string { return []string{RoleReadOnly, RoleReadWrite, RoleAdmin} }

// roleActions are the repository actions a role grants; every role may
// list the catalog.
func roleActions(role string) []string {
	switch role {
	case RoleReadOnly:
		return []string{"pull"}
	case RoleReadWrite:
		return []string{"pull", "push"}
	case RoleAdmin:
		return []string{"pull", "push", "delete", "*"}
	}
	return nil
}

// signingKey is one of the cluster's token keys (HMAC-SHA256).
type signingKey struct {
	ID      string    `json:"id"`
	Secret  []byte    `json:"secret"`
	Created time.Time `json:"created"`
}

// keyRing is the stored list of keys: the first signs, every one verifies.
type keyRing struct {
	Keys []signingKey `json:"keys"`
}

// AuthSettings are the cluster-wide authentication settings.
type AuthSettings struct {
	// AnonymousPull lets anyone pull and list without logging in.
	AnonymousPull bool `json:"anonymous_pull"`
}

// userRow is a named user in the store.
type userRow struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    []byte    `json:"hash"`
	Created time.Time `json:"created"`
}

// LoginFailure is one failed login, as a replica remembers it.
type LoginFailure struct {
	Time    time.Time `json:"time"`
	Replica string    `json:"replica"`
	User    string    `json:"user"`
	Remote  string    `json:"remote"`
	Reason  string    `json:"reason"`
}

// authority checks callers of one replica and issues tokens.
type authority struct {
	cli       func() *clientv3.Client
	cluster   string
	replica   string
	adminPass string
	log       *slog.Logger
	now       func() time.Time

	mu       sync.Mutex
	ring     keyRing
	settings AuthSettings
	loadedAt time.Time
	forcedAt time.Time
	// verified caches good credentials: sha256(user, password) → the user
	// row's revision and role, so bcrypt runs once per password change.
	verified map[[32]byte]verifiedCred
	throttle map[string]*throttleState
	failures []LoginFailure
}

type verifiedCred struct {
	rev  int64
	role string
}

func newAuthority(cli func() *clientv3.Client, cluster, replica, adminPass string, log *slog.Logger) *authority {
	return &authority{cli: cli, cluster: cluster, replica: replica, adminPass: adminPass, log: log, now: time.Now,
		verified: map[[32]byte]verifiedCred{}, throttle: map[string]*throttleState{}}
}

var _ oci.Authorizer = (*authority)(nil)

// service is the token service name: the cluster's.
func (a *authority) service() string { return "ladder-registry:" + a.cluster }

func (a *authority) issuer() string { return "ladder-registry:" + a.cluster }

// tokenAccess is one grant of a token, as the token spec writes it.
type tokenAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type tokenClaims struct {
	jwt.RegisteredClaims
	Access []tokenAccess `json:"access"`
	// Refresh marks a refresh token, good only at the token endpoint.
	Refresh bool `json:"refresh,omitempty"`
}

// caller is who a request comes from.
type caller struct {
	user   string // "" for anonymous
	role   string
	access []tokenAccess // from a bearer token
	bearer bool
}

// Authorize implements oci.Authorizer.
func (a *authority) Authorize(r *http.Request, acc oci.Access) *oci.Denial {
	c, denial := a.identify(r)
	if denial != nil {
		return denial
	}
	if acc.Type == "" {
		if c.user == "" && !c.bearer {
			return a.challenge(r, acc, "")
		}
		return nil
	}
	if a.allowed(r.Context(), c, acc) {
		return nil
	}
	if c.user == "" && !c.bearer {
		return a.challenge(r, acc, "")
	}
	if c.bearer {
		return a.challenge(r, acc, "insufficient_scope")
	}
	return &oci.Denial{Status: http.StatusForbidden}
}

// allowed says whether c may do acc.
func (a *authority) allowed(ctx context.Context, c caller, acc oci.Access) bool {
	if c.bearer {
		for _, g := range c.access {
			if g.Type == acc.Type && g.Name == acc.Name && (slices.Contains(g.Actions, acc.Action) || slices.Contains(g.Actions, "*")) {
				return true
			}
		}
		if acc.Action != "pull" {
			return false
		}
		// Every role may pull every repository, so a pull the token does
		// not name (the source of a cross-repository mount, which clients
		// seldom ask a scope for) is the holder's to make.
		if c.user == "" {
			return a.currentSettings(ctx).AnonymousPull
		}
		role, err := a.roleOf(ctx, c.user)
		return err == nil && slices.Contains(roleActions(role), "pull")
	}
	if c.user == "" {
		return (acc.Action == "pull" || acc.Type == "registry") && a.currentSettings(ctx).AnonymousPull
	}
	return slices.Contains(grant(c.role, []string{acc.Action}, acc.Type), acc.Action)
}

// grant is what role gets of the actions asked on a resource of type typ.
func grant(role string, asked []string, typ string) []string {
	var out []string
	if typ == "registry" {
		if role != "" {
			return asked // the catalog: every user may list it
		}
		return nil
	}
	have := roleActions(role)
	for _, act := range asked {
		if slices.Contains(have, act) && !slices.Contains(out, act) {
			out = append(out, act)
		}
	}
	return out
}

// challenge is a 401 naming the token endpoint.
func (a *authority) challenge(r *http.Request, acc oci.Access, errCode string) *oci.Denial {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	v := fmt.Sprintf(`Bearer realm="%s://%s/auth/token",service="%s"`, scheme, r.Host, a.service())
	if s := acc.Scope(); s != "" {
		v += fmt.Sprintf(`,scope="%s"`, s)
	}
	if errCode != "" {
		v += fmt.Sprintf(`,error="%s"`, errCode)
	}
	return &oci.Denial{Status: http.StatusUnauthorized, Challenge: v}
}

// identify reads the request's credentials: none, basic or a bearer token.
func (a *authority) identify(r *http.Request) (caller, *oci.Denial) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return caller{}, nil
	}
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		claims, err := a.parseToken(r.Context(), strings.TrimSpace(tok))
		if err != nil || claims.Refresh {
			d := a.challenge(r, oci.Access{}, "invalid_token")
			d.Message = "invalid or expired token: log in again"
			return caller{}, d
		}
		return caller{user: claims.Subject, access: claims.Access, bearer: true}, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return caller{}, a.challenge(r, oci.Access{}, "")
	}
	role, err := a.login(r.Context(), user, pass, remoteHost(r))
	var te *throttledError
	switch {
	case errors.As(err, &te):
		return caller{}, &oci.Denial{Status: http.StatusTooManyRequests, RetryAfter: te.wait,
			Message: fmt.Sprintf("too many failed logins: try again in %s", te.wait.Round(time.Second))}
	case err != nil:
		d := a.challenge(r, oci.Access{}, "")
		d.Message = "wrong user name or password"
		return caller{}, d
	}
	return caller{user: user, role: role}, nil
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// errBadCredentials is a failed login.
var errBadCredentials = errors.New("wrong user name or password")

// login checks a user's password, throttled per user and per address;
// it returns the user's role.
func (a *authority) login(ctx context.Context, user, pass, remote string) (string, error) {
	if wait := a.throttled(user, remote); wait > 0 {
		return "", &throttledError{wait: wait}
	}
	role, reason, err := a.checkPassword(ctx, user, pass)
	if err != nil {
		return "", err // the store did not answer: not the caller's fault
	}
	if reason != "" {
		a.failed(user, remote, reason)
		return "", errBadCredentials
	}
	a.succeeded(user, remote)
	return role, nil
}

// checkPassword returns the user's role, or why the password is refused.
func (a *authority) checkPassword(ctx context.Context, user, pass string) (role, reason string, err error) {
	if user == AdminUser {
		if a.adminPass != "" && subtle.ConstantTimeCompare([]byte(pass), []byte(a.adminPass)) == 1 {
			return RoleAdmin, "", nil
		}
		return "", "wrong password", nil
	}
	row, rev, err := a.user(ctx, user)
	if err != nil {
		return "", "", err
	}
	if rev == 0 {
		return "", "unknown user", nil
	}
	sum := credSum(user, pass)
	a.mu.Lock()
	v, ok := a.verified[sum]
	a.mu.Unlock()
	if ok && v.rev == rev {
		return row.Role, "", nil
	}
	if bcrypt.CompareHashAndPassword(row.Hash, []byte(pass)) != nil {
		return "", "wrong password", nil
	}
	a.mu.Lock()
	if len(a.verified) > 10000 {
		clear(a.verified)
	}
	a.verified[sum] = verifiedCred{rev: rev, role: row.Role}
	a.mu.Unlock()
	return row.Role, "", nil
}

func credSum(user, pass string) [32]byte {
	h := sha256.New()
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(pass))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// user reads a named user; rev 0 when there is none.
func (a *authority) user(ctx context.Context, name string) (userRow, int64, error) {
	var row userRow
	cli := a.cli()
	if cli == nil {
		return row, 0, ErrNotReady
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// A linearizable read: a user just removed or changed through another
	// replica is so here too. Without quorum, what this member has.
	resp, err := cli.Get(ctx, authUserPrefix+name)
	if err != nil {
		if resp, err = cli.Get(ctx, authUserPrefix+name, clientv3.WithSerializable()); err != nil {
			return row, 0, fmt.Errorf("read user %s: %w", name, err)
		}
	}
	if len(resp.Kvs) == 0 {
		return row, 0, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &row); err != nil {
		return row, 0, fmt.Errorf("decode user %s: %w", name, err)
	}
	return row, resp.Kvs[0].ModRevision, nil
}

// The signing keys and settings.

// load reads the keys and settings from the store, creating the first key
// when there is none. force reads even a fresh copy again (at most once a
// second).
func (a *authority) load(ctx context.Context, force bool) (keyRing, AuthSettings, error) {
	a.mu.Lock()
	now := a.now()
	fresh := len(a.ring.Keys) > 0 && now.Sub(a.loadedAt) < keysFresh
	if fresh && (!force || now.Sub(a.forcedAt) < time.Second) {
		ring, set := a.ring, a.settings
		a.mu.Unlock()
		return ring, set, nil
	}
	if force {
		a.forcedAt = now
	}
	a.mu.Unlock()
	cli := a.cli()
	if cli == nil {
		return keyRing{}, AuthSettings{AnonymousPull: true}, ErrNotReady
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ring, set, err := readAuth(ctx, cli)
	if err == nil && len(ring.Keys) == 0 {
		ring, err = ensureKey(ctx, cli)
	}
	if err != nil {
		// A store that does not answer for a moment (an election, a
		// replica catching up) leaves the keys and settings as they were.
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.ring.Keys) > 0 {
			return a.ring, a.settings, nil
		}
		return ring, set, err
	}
	a.mu.Lock()
	a.ring, a.settings, a.loadedAt = ring, set, a.now()
	a.mu.Unlock()
	return ring, set, nil
}

// currentSettings are the settings, or the defaults if the store does not
// answer.
func (a *authority) currentSettings(ctx context.Context) AuthSettings {
	_, set, err := a.load(ctx, false)
	if err != nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.loadedAt.IsZero() {
			return AuthSettings{AnonymousPull: true}
		}
		return a.settings
	}
	return set
}

func readAuth(ctx context.Context, cli *clientv3.Client) (keyRing, AuthSettings, error) {
	set := AuthSettings{AnonymousPull: true}
	var ring keyRing
	resp, err := cli.Txn(ctx).Then(clientv3.OpGet(authKeysKey), clientv3.OpGet(authSettingKey)).Commit()
	if err != nil {
		return ring, set, fmt.Errorf("read signing keys: %w", err)
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, &ring); err != nil {
			return ring, set, fmt.Errorf("decode signing keys: %w", err)
		}
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, &set); err != nil {
			return ring, set, fmt.Errorf("decode auth settings: %w", err)
		}
	}
	return ring, set, nil
}

func newSigningKey() (signingKey, error) {
	k := signingKey{Secret: make([]byte, 32), Created: time.Now().UTC()}
	if _, err := rand.Read(k.Secret); err != nil {
		return k, fmt.Errorf("generate signing key: %w", err)
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	k.ID = hex.EncodeToString(id[:])
	return k, nil
}

// ensureKey creates the cluster's first signing key unless another replica
// did first, and returns the stored keys.
func ensureKey(ctx context.Context, cli *clientv3.Client) (keyRing, error) {
	k, err := newSigningKey()
	if err != nil {
		return keyRing{}, err
	}
	ring := keyRing{Keys: []signingKey{k}}
	b, _ := json.Marshal(ring)
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(authKeysKey), "=", 0)).
		Then(clientv3.OpPut(authKeysKey, string(b))).Else(clientv3.OpGet(authKeysKey)).Commit()
	if err != nil {
		return keyRing{}, fmt.Errorf("create signing key: %w", err)
	}
	if resp.Succeeded {
		return ring, nil
	}
	ring = keyRing{}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		err = json.Unmarshal(kvs[0].Value, &ring)
	}
	return ring, err
}

// rotateKey makes a new signing key; the one it replaces still verifies
// (until the next rotation), so tokens already issued stay good until they
// expire. It returns the new key's id and the one it replaces.
func rotateKey(ctx context.Context, cli *clientv3.Client) (newID, oldID string, err error) {
	for range 5 {
		resp, err := cli.Get(ctx, authKeysKey)
		if err != nil {
			return "", "", fmt.Errorf("rotate signing key: %w", err)
		}
		var ring keyRing
		var rev int64
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if err := json.Unmarshal(resp.Kvs[0].Value, &ring); err != nil {
				return "", "", fmt.Errorf("rotate signing key: decode keys: %w", err)
			}
		}
		k, err := newSigningKey()
		if err != nil {
			return "", "", err
		}
		next := keyRing{Keys: []signingKey{k}}
		if len(ring.Keys) > 0 {
			oldID = ring.Keys[0].ID
			next.Keys = append(next.Keys, ring.Keys[0])
		}
		b, _ := json.Marshal(next)
		tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(authKeysKey), "=", rev)).
			Then(clientv3.OpPut(authKeysKey, string(b))).Commit()
		if err != nil {
			return "", "", fmt.Errorf("rotate signing key: %w", err)
		}
		if tr.Succeeded {
			return k.ID, oldID, nil
		}
	}
	return "", "", errors.New("rotate signing key: the keys keep changing under us; try again")
}

// Tokens.

func (a *authority) parseToken(ctx context.Context, tok string) (*tokenClaims, error) {
	claims := &tokenClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, force := range []bool{false, true} {
			ring, _, err := a.load(ctx, force)
			if err != nil {
				return nil, err
			}
			for _, k := range ring.Keys {
				if k.ID == kid {
					return k.Secret, nil
				}
			}
		}
		return nil, fmt.Errorf("unknown signing key %q", kid)
	}, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithAudience(a.service()),
		jwt.WithIssuer(a.issuer()), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, err
	}
	return claims, nil
}

func (a *authority) sign(ctx context.Context, claims tokenClaims) (string, error) {
	ring, _, err := a.load(ctx, false)
	if err != nil {
		return "", err
	}
	k := ring.Keys[0]
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["kid"] = k.ID
	return t.SignedString(k.Secret)
}

func (a *authority) claims(user string, ttl time.Duration) tokenClaims {
	now := a.now()
	var id [8]byte
	_, _ = rand.Read(id[:])
	return tokenClaims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: a.issuer(), Subject: user, Audience: jwt.ClaimStrings{a.service()},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), ID: hex.EncodeToString(id[:]),
	}}
}

// parseScope reads "repository:team/app:pull,push" (the name may hold
// colons: a host with a port).
func parseScope(s string) (tokenAccess, bool) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i <= 0 || i == len(rest)-1 {
		return tokenAccess{}, false
	}
	if j := strings.IndexByte(typ, '('); j > 0 {
		typ = typ[:j] // repository(plugin)
	}
	return tokenAccess{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")}, true
}

// tokenResponse answers the token endpoint in both shapes clients read.
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// handleToken is the token endpoint: GET with basic auth (or none, for an
// anonymous token), or POST with the OAuth2 password or refresh_token form.
func (a *authority) handleToken(w http.ResponseWriter, req *http.Request) {
	var (
		user, pass, refresh string
		hasCreds, offline   bool
		scopes              []string
	)
	switch req.Method {
	case http.MethodGet:
		q := req.URL.Query()
		scopes = q["scope"]
		user, pass, hasCreds = req.BasicAuth()
		offline = q.Get("offline_token") == "true"
	case http.MethodPost:
		req.Body = http.MaxBytesReader(w, req.Body, 64<<10)
		if err := req.ParseForm(); err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
			return
		}
		scopes = strings.Fields(req.PostForm.Get("scope"))
		offline = req.PostForm.Get("access_type") == "offline"
		switch req.PostForm.Get("grant_type") {
		case "password":
			user, pass, hasCreds = req.PostForm.Get("username"), req.PostForm.Get("password"), true
		case "refresh_token":
			refresh = req.PostForm.Get("refresh_token")
		default:
			tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "use grant_type password or refresh_token")
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET or POST")
		return
	}
	ctx := req.Context()
	role := ""
	switch {
	case refresh != "":
		claims, err := a.parseToken(ctx, refresh)
		if err != nil || !claims.Refresh {
			tokenError(w, http.StatusUnauthorized, "invalid_grant", "invalid or expired refresh token: log in again")
			return
		}
		user = claims.Subject
		if role, err = a.roleOf(ctx, user); err != nil {
			tokenError(w, http.StatusUnauthorized, "invalid_grant", "the user of this login no longer exists: log in again")
			return
		}
		offline = true
	case hasCreds:
		var err error
		role, err = a.login(ctx, user, pass, remoteHost(req))
		var te *throttledError
		switch {
		case errors.As(err, &te):
			w.Header().Set("Retry-After", fmt.Sprint(max(int(te.wait.Seconds()), 1)))
			tokenError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS",
				fmt.Sprintf("too many failed logins: try again in %s", te.wait.Round(time.Second)))
			return
		case errors.Is(err, errBadCredentials):
			w.Header().Set("WWW-Authenticate", `Basic realm="ladder-registry"`)
			tokenError(w, http.StatusUnauthorized, "UNAUTHORIZED", "wrong user name or password")
			return
		case err != nil:
			tokenError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "check credentials: the store did not answer")
			return
		}
	}
	anon := a.currentSettings(ctx).AnonymousPull
	claims := a.claims(user, TokenTTL)
	for _, s := range scopes {
		acc, ok := parseScope(s)
		if !ok {
			continue
		}
		var got []string
		switch {
		case user != "":
			got = grant(role, acc.Actions, acc.Type)
		case anon:
			got = grant(RoleReadOnly, acc.Actions, acc.Type)
		}
		if len(got) > 0 {
			claims.Access = append(claims.Access, tokenAccess{Type: acc.Type, Name: acc.Name, Actions: got})
		}
	}
	tok, err := a.sign(ctx, claims)
	if err != nil {
		a.log.Warn("sign token failed", "err", err)
		tokenError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "sign token: the store did not answer")
		return
	}
	resp := tokenResponse{Token: tok, AccessToken: tok, ExpiresIn: int(TokenTTL / time.Second),
		IssuedAt: claims.IssuedAt.UTC().Format(time.RFC3339), Scope: strings.Join(scopes, " ")}
	if offline && user != "" {
		rc := a.claims(user, RefreshTTL)
		rc.Refresh = true
		if resp.RefreshToken, err = a.sign(ctx, rc); err != nil {
			tokenError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "sign token: the store did not answer")
			return
		}
	}
	writeJSONResponse(w, http.StatusOK, resp)
}

// roleOf is the current role of a user; an error if the user is gone.
func (a *authority) roleOf(ctx context.Context, user string) (string, error) {
	if user == AdminUser {
		return RoleAdmin, nil
	}
	row, rev, err := a.user(ctx, user)
	if err != nil {
		return "", err
	}
	if rev == 0 {
		return "", ErrNotFound
	}
	return row.Role, nil
}

func tokenError(w http.ResponseWriter, code int, kind, msg string) {
	writeJSONResponse(w, code, map[string]any{
		"error": kind, "error_description": msg,
		"errors": []map[string]string{{"code": strings.ToUpper(kind), "message": msg}},
	})
}

// Throttling of failed logins.

// throttleState counts the recent failures of one user or one address.
type throttleState struct {
	fails int
	until time.Time
	last  time.Time
}

type throttledError struct{ wait time.Duration }

func (e *throttledError) Error() string { return "too many failed logins" }

// Back-off: after freeLogins failures in a row, each failure doubles the
// wait, from a second up to maxBackoff; a quiet quarter of an hour forgets.
const (
	freeLogins    = 3
	maxBackoff    = 5 * time.Minute
	throttleForgt = 15 * time.Minute
	keptFailures  = 100
)

func (a *authority) throttled(user, remote string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	var wait time.Duration
	for _, k := range []string{"user:" + user, "addr:" + remote} {
		if s := a.throttle[k]; s != nil && s.until.After(now) {
			wait = max(wait, s.until.Sub(now))
		}
	}
	return wait
}

func (a *authority) failed(user, remote, reason string) {
	a.log.Warn("login failed", "user", user, "remote", remote, "reason", reason)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if len(a.throttle) > 10000 {
		for k, s := range a.throttle {
			if now.Sub(s.last) > throttleForgt {
				delete(a.throttle, k)
			}
		}
	}
	for _, k := range []string{"user:" + user, "addr:" + remote} {
		s := a.throttle[k]
		if s == nil || now.Sub(s.last) > throttleForgt {
			s = &throttleState{}
			a.throttle[k] = s
		}
		s.fails++
		s.last = now
		if n := s.fails - freeLogins; n >= 0 {
			s.until = now.Add(min(time.Second<<min(n, 20), maxBackoff))
		}
	}
	a.failures = append(a.failures, LoginFailure{Time: now.UTC(), Replica: a.replica, User: user, Remote: remote, Reason: reason})
	if len(a.failures) > keptFailures {
		a.failures = slices.Delete(a.failures, 0, len(a.failures)-keptFailures)
	}
}

func (a *authority) succeeded(user, remote string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.throttle, "user:"+user)
	delete(a.throttle, "addr:"+remote)
}

// recentFailures returns the failures this replica remembers, newest last.
func (a *authority) recentFailures() []LoginFailure {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.failures)
}
