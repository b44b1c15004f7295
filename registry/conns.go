package registry

import (
	"context"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// freshConns tracks the HTTP connections that have not begun a request
// yet. http.Server.Shutdown waits up to 5 s for such a connection before it
// counts it idle, and clients open them as spares (a transport dials a
// connection for a request, another one frees up first, and the new one
// waits unused in its pool); over TLS, where dialing takes a handshake,
// that happens on most stops. Closing them at a stop loses nothing: no
// request was sent on them.
type freshConns struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

// track is the server's ConnState hook.
func (f *freshConns) track(c net.Conn, s http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s == http.StateNew {
		if f.m == nil {
			f.m = map[net.Conn]struct{}{}
		}
		f.m[c] = struct{}{}
		return
	}
	delete(f.m, c)
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.m {
		_ = c.Close()
		delete(f.m, c)
	}
}

// shutdown is srv.Shutdown(ctx) that also closes, while it waits, the
// connections that never began a request.
func (f *freshConns) shutdown(ctx context.Context, srv *http.Server) error {
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		f.closeAll()
		select {
		case err := <-done:
			return err
		case <-tick.C:
		}
	}
}

// serverLog is the HTTP server's own error log: TLS handshakes that fail
// (a client that does not trust the CA, a plain-HTTP liveness check on the
// HTTPS port) are routine and logged at debug level; anything else is a
// warning.
func serverLog(log *slog.Logger) *stdlog.Logger {
	return stdlog.New(serverLogWriter{log}, "", 0)
}

type serverLogWriter struct{ log *slog.Logger }

func (w serverLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, "http server", "msg", msg)
	return len(p), nil
}
