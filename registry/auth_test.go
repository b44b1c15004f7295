package registry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// testTokens runs on a cluster of three (TestClusterOfThree): the token
// flow as clients speak it, a token from one replica good on another, a
// wrong password refused and then throttled, roles, refresh tokens and a
// key rotation.
func testTokens(t *testing.T, reps []*Replica) {
	ctx := context.Background()
	a, b := reps[0].URL(), reps[1].URL()

	resp, err := http.Get(b + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, `Bearer realm="`+b+`/auth/token",service="`) {
		t.Fatalf("challenge of /v2/ = %q", ch)
	}

	token := func(base, user, pass string, scopes ...string) (int, tokenResponse) {
		t.Helper()
		q := url.Values{"service": {"x"}, "scope": scopes, "offline_token": {"true"}}
		req, _ := http.NewRequest(http.MethodGet, base+"/auth/token?"+q.Encode(), nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr tokenResponse
		_ = json.NewDecoder(resp.Body).Decode(&tr)
		return resp.StatusCode, tr
	}
	call := func(method, url, tok string) int {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	// The admin's token, issued by A, pushes through B.
	code, tr := token(a, AdminUser, testPassword, "repository:team/tok:pull,push")
	if code != http.StatusOK || tr.Token == "" || tr.RefreshToken == "" {
		t.Fatalf("admin token from A: %d %+v", code, tr)
	}
	if got := call(http.MethodGet, b+"/v2/", tr.Token); got != http.StatusOK {
		t.Errorf("GET /v2/ on B with A's token = %d, want 200", got)
	}
	if got := call(http.MethodPost, b+"/v2/team/tok/blobs/uploads/", tr.Token); got != http.StatusAccepted {
		t.Errorf("start upload on B with A's token = %d, want 202", got)
	}
	if got := call(http.MethodPost, b+"/v2/team/other/blobs/uploads/", tr.Token); got != http.StatusUnauthorized {
		t.Errorf("start upload in a repository the token does not name = %d, want 401", got)
	}

	// A wrong password is refused, and after a few, throttled.
	for i := range freeLogins {
		if code, _ := token(a, AdminUser, "wrong-"+string(rune('a'+i)), "repository:team/tok:pull"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, code)
		}
	}
	if code, _ := token(a, AdminUser, testPassword); code != http.StatusTooManyRequests {
		t.Errorf("login after %d failures: %d, want 429", freeLogins, code)
	}
	if fs := reps[0].auth.recentFailures(); len(fs) != freeLogins || fs[0].User != AdminUser || fs[0].Remote != "127.0.0.1" {
		t.Errorf("recent failures = %+v", fs)
	}
	reps[0].auth.succeeded(AdminUser, "127.0.0.1") // as a good login from elsewhere would

	// A read-only user gets pull, not push.
	ac := AdminClient{HC: http.DefaultClient, Base: b, Password: testPassword}
	if _, err := ac.AddUser(ctx, "reader", RoleReadOnly, "reader-pass"); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.AddUser(ctx, "reader", RoleReadOnly, "reader-pass"); err == nil {
		t.Error("adding a user twice succeeded")
	}
	code, tr = token(a, "reader", "reader-pass", "repository:team/tok:pull,push")
	if code != http.StatusOK || len(tr.Token) == 0 {
		t.Fatalf("reader token: %d", code)
	}
	claims, err := reps[2].auth.parseToken(ctx, tr.Token)
	if err != nil || len(claims.Access) != 1 || strings.Join(claims.Access[0].Actions, ",") != "pull" {
		t.Errorf("reader's grants = %+v, %v; want pull only", claims, err)
	}

	// A refresh token gets a new access token; a rotation keeps tokens
	// signed with the previous key good.
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken},
		"service": {"x"}, "scope": {"repository:team/tok:pull"}, "client_id": {"test"}}
	resp, err = http.PostForm(b+"/auth/token", form)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh on B: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	if _, err := ac.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	reps[0].auth.mu.Lock()
	reps[0].auth.loadedAt = time.Time{}
	reps[0].auth.mu.Unlock()
	if _, err := reps[0].auth.parseToken(ctx, tr.Token); err != nil {
		t.Errorf("token of the previous key after a rotation: %v", err)
	}
	if err := ac.RemoveUser(ctx, "reader"); err != nil {
		t.Fatal(err)
	}
	if code, _ := token(a, "reader", "reader-pass"); code != http.StatusUnauthorized {
		t.Errorf("removed user's login: %d, want 401", code)
	}
}
