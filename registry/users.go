package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/bcrypt"
)

// User is a registry user as the admin API lists it (never its password).
type User struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created,omitzero"`
	// BuiltIn marks the cluster's admin, whose password is the cluster's
	// admin password.
	BuiltIn bool `json:"built_in,omitempty"`
}

// UserChange is the body of a user's creation or change: the fields set
// are changed.
type UserChange struct {
	Name     string `json:"name,omitempty"`
	Role     string `json:"role,omitempty"`
	Password string `json:"password,omitempty"`
}

// MinPasswordLen is the shortest password a user may have.
const MinPasswordLen = 8

var userNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidateUser checks a user's name, role (when not empty) and password
// (when not empty).
func ValidateUser(name, role, password string) error {
	if !userNameRE.MatchString(name) {
		return fmt.Errorf("%w: user name %q: use 1 to 64 lower-case letters, digits, '.', '_' or '-'", ErrInvalid, name)
	}
	if name == AdminUser {
		return fmt.Errorf("%w: %q is the built-in administrator; its password is the cluster's admin password", ErrInvalid, name)
	}
	if role != "" && !slices.Contains(Roles(), role) {
		return fmt.Errorf("%w: role %q: use %s", ErrInvalid, role, strings.Join(Roles(), ", "))
	}
	if password != "" && len(password) < MinPasswordLen {
		return fmt.Errorf("%w: password too short: use at least %d characters", ErrInvalid, MinPasswordLen)
	}
	return nil
}

// The admin API.

func (r *Replica) authRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/token", r.auth.handleToken)
	mux.HandleFunc("POST /auth/token", r.auth.handleToken)
	mux.HandleFunc("GET /api/v1/users", r.handleUsers)
	mux.HandleFunc("POST /api/v1/users", r.handleAddUser)
	mux.HandleFunc("PATCH /api/v1/users/{name}", r.handleChangeUser)
	mux.HandleFunc("DELETE /api/v1/users/{name}", r.handleRemoveUser)
	mux.HandleFunc("GET /api/v1/auth/failures", r.handleFailures)
	mux.HandleFunc("GET /api/v1/auth/settings", r.handleSettings)
	mux.HandleFunc("PUT /api/v1/auth/settings", r.handleSettings)
	mux.HandleFunc("POST /api/v1/auth/rotate-key", r.handleRotateKey)
	mux.HandleFunc("POST /api/v1/gc", r.handleGC)
}

func (r *Replica) handleUsers(w http.ResponseWriter, req *http.Request) {
	cli := r.adminRequest(w, req, nil)
	if cli == nil {
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, authUserPrefix, clientv3.WithPrefix())
	if err != nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "list users: " + err.Error()})
		return
	}
	users := []User{{Name: AdminUser, Role: RoleAdmin, BuiltIn: true}}
	for _, kv := range resp.Kvs {
		var row userRow
		if json.Unmarshal(kv.Value, &row) == nil {
			users = append(users, User{Name: row.Name, Role: row.Role, Created: row.Created})
		}
	}
	writeJSONResponse(w, http.StatusOK, users)
}

func (r *Replica) handleAddUser(w http.ResponseWriter, req *http.Request) {
	var ch UserChange
	cli := r.adminRequest(w, req, &ch)
	if cli == nil {
		return
	}
	if ch.Role == "" || ch.Password == "" {
		writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": "a new user needs a role and a password"})
		return
	}
	if err := ValidateUser(ch.Name, ch.Role, ch.Password); err != nil {
		writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(ch.Password), bcrypt.DefaultCost)
	if err != nil {
		writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": "hash password: " + err.Error()})
		return
	}
	row := userRow{Name: ch.Name, Role: ch.Role, Hash: hash, Created: time.Now().UTC()}
	b, _ := json.Marshal(row)
	key := authUserPrefix + ch.Name
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	switch {
	case err != nil:
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "add user: " + err.Error()})
	case !resp.Succeeded:
		writeJSONResponse(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("user %s exists", ch.Name)})
	default:
		r.log.Info("user added", "user", ch.Name, "role", ch.Role)
		writeJSONResponse(w, http.StatusCreated, User{Name: row.Name, Role: row.Role, Created: row.Created})
	}
}

func (r *Replica) handleChangeUser(w http.ResponseWriter, req *http.Request) {
	var ch UserChange
	cli := r.adminRequest(w, req, &ch)
	if cli == nil {
		return
	}
	name := req.PathValue("name")
	if err := ValidateUser(name, ch.Role, ch.Password); err != nil {
		writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	var hash []byte
	if ch.Password != "" {
		var err error
		if hash, err = bcrypt.GenerateFromPassword([]byte(ch.Password), bcrypt.DefaultCost); err != nil {
			writeJSONResponse(w, http.StatusBadRequest, map[string]string{"error": "hash password: " + err.Error()})
			return
		}
	}
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	key := authUserPrefix + name
	for range 5 {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "change user: " + err.Error()})
			return
		}
		if len(resp.Kvs) == 0 {
			writeJSONResponse(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no user %s", name)})
			return
		}
		var row userRow
		if err := json.Unmarshal(resp.Kvs[0].Value, &row); err != nil {
			writeJSONResponse(w, http.StatusInternalServerError, map[string]string{"error": "decode user: " + err.Error()})
			return
		}
		if ch.Role != "" {
			row.Role = ch.Role
		}
		if hash != nil {
			row.Hash = hash
		}
		b, _ := json.Marshal(row)
		tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "change user: " + err.Error()})
			return
		}
		if tr.Succeeded {
			r.log.Info("user changed", "user", name, "role", row.Role, "password_changed", hash != nil)
			writeJSONResponse(w, http.StatusOK, User{Name: row.Name, Role: row.Role, Created: row.Created})
			return
		}
	}
	writeJSONResponse(w, http.StatusConflict, map[string]string{"error": "the user keeps changing; try again"})
}

func (r *Replica) handleRemoveUser(w http.ResponseWriter, req *http.Request) {
	cli := r.adminRequest(w, req, nil)
	if cli == nil {
		return
	}
	name := req.PathValue("name")
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	resp, err := cli.Delete(ctx, authUserPrefix+name)
	switch {
	case err != nil:
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "remove user: " + err.Error()})
	case resp.Deleted == 0:
		writeJSONResponse(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no user %s", name)})
	default:
		r.log.Info("user removed", "user", name)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (r *Replica) handleFailures(w http.ResponseWriter, req *http.Request) {
	if r.adminRequest(w, req, nil) == nil {
		return
	}
	writeJSONResponse(w, http.StatusOK, r.auth.recentFailures())
}

func (r *Replica) handleSettings(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodGet {
		if r.adminRequest(w, req, nil) == nil {
			return
		}
		_, set, err := r.auth.load(req.Context(), true)
		if err != nil {
			writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "read settings: " + err.Error()})
			return
		}
		writeJSONResponse(w, http.StatusOK, set)
		return
	}
	var set AuthSettings
	cli := r.adminRequest(w, req, &set)
	if cli == nil {
		return
	}
	b, _ := json.Marshal(set)
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	if _, err := cli.Put(ctx, authSettingKey, string(b)); err != nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "write settings: " + err.Error()})
		return
	}
	r.log.Info("auth settings changed", "anonymous_pull", set.AnonymousPull)
	writeJSONResponse(w, http.StatusOK, set)
}

// RotatedKey is the answer of a key rotation.
type RotatedKey struct {
	KeyID    string `json:"key_id"`
	Previous string `json:"previous_key_id,omitempty"`
}

func (r *Replica) handleRotateKey(w http.ResponseWriter, req *http.Request) {
	cli := r.adminRequest(w, req, nil)
	if cli == nil {
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 3*requestTimeout)
	defer cancel()
	id, old, err := rotateKey(ctx, cli)
	if err != nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	r.log.Info("signing key rotated", "key", id, "previous", old)
	writeJSONResponse(w, http.StatusOK, RotatedKey{KeyID: id, Previous: old})
}

// The client side, for the CLI.

// AdminClient calls a replica's admin API as the cluster's admin.
type AdminClient struct {
	HC       *http.Client
	Base     string // the replica's URL
	Password string // the admin password
}

// Users lists the users.
func (c AdminClient) Users(ctx context.Context) ([]User, error) {
	var out []User
	return out, c.call(ctx, http.MethodGet, "/api/v1/users", nil, http.StatusOK, &out, "list users")
}

// AddUser adds a user.
func (c AdminClient) AddUser(ctx context.Context, name, role, password string) (User, error) {
	var out User
	return out, c.call(ctx, http.MethodPost, "/api/v1/users", UserChange{Name: name, Role: role, Password: password},
		http.StatusCreated, &out, "add user "+name)
}

// ChangeUser changes a user's role and/or password (the fields not empty).
func (c AdminClient) ChangeUser(ctx context.Context, name, role, password string) (User, error) {
	var out User
	return out, c.call(ctx, http.MethodPatch, "/api/v1/users/"+name, UserChange{Role: role, Password: password},
		http.StatusOK, &out, "change user "+name)
}

// RemoveUser removes a user.
func (c AdminClient) RemoveUser(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/api/v1/users/"+name, nil, http.StatusNoContent, nil, "remove user "+name)
}

// Failures lists the replica's recent failed logins.
func (c AdminClient) Failures(ctx context.Context) ([]LoginFailure, error) {
	var out []LoginFailure
	return out, c.call(ctx, http.MethodGet, "/api/v1/auth/failures", nil, http.StatusOK, &out, "read failed logins")
}

// SetAuthSettings writes the cluster's authentication settings.
func (c AdminClient) SetAuthSettings(ctx context.Context, set AuthSettings) error {
	return c.call(ctx, http.MethodPut, "/api/v1/auth/settings", set, http.StatusOK, nil, "write auth settings")
}

// RotateKey rotates the cluster's token signing key.
func (c AdminClient) RotateKey(ctx context.Context) (RotatedKey, error) {
	var out RotatedKey
	return out, c.call(ctx, http.MethodPost, "/api/v1/auth/rotate-key", nil, http.StatusOK, &out, "rotate signing key")
}

// GC collects unreferenced blobs (see GCOptions).
func (c AdminClient) GC(ctx context.Context, o GCOptions) (GCReport, error) {
	var out GCReport
	return out, c.call(ctx, http.MethodPost, "/api/v1/gc", o, http.StatusOK, &out, "collect garbage")
}

func (c AdminClient) call(ctx context.Context, method, path string, body any, want int, out any, what string) error {
	code, raw, err := adminCall(ctx, c.HC, method, strings.TrimRight(c.Base, "/")+path, c.Password, body)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case code == http.StatusUnauthorized:
		return fmt.Errorf("%s: %w: check the admin password", what, ErrUnauthorized)
	case code != want:
		return fmt.Errorf("%s: %s", what, answer(code, raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s: decode answer: %w", what, err)
		}
	}
	return nil
}
