// Command ocitest serves the OCI distribution API over an in-memory
// metadata store and a blob folder, for the conformance suite and manual
// checks. It is not the registry replica: that one keeps metadata in the
// replicated store.
//
//	go run ./registry/oci/internal/ocitest -listen 127.0.0.1:5000 -password secret
//
// It prints "listening on http://ADDR" once it serves, and stops on SIGINT
// or SIGTERM.
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ladder-dev/ladder/registry/oci"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ocitest:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	blobs := flag.String("blobs", "", "blob folder (default: a new temporary folder, removed on exit)")
	password := flag.String("password", "", "password of user admin (push and delete); empty: no pushes")
	verbose := flag.Bool("v", false, "log every request")
	challenge := flag.Bool("ping-challenge", false, "challenge GET /v2/ without credentials (lets the Docker CLI push)")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir := *blobs
	if dir == "" {
		tmp, err := os.MkdirTemp("", "ocitest-blobs-")
		if err != nil {
			return fmt.Errorf("create blob folder: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	var check func(user, pass string) bool
	if *password != "" {
		check = func(user, pass string) bool {
			return user == "admin" && subtle.ConstantTimeCompare([]byte(pass), []byte(*password)) == 1
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", oci.NewHandler(oci.Options{
		Meta:          oci.NewMemoryMetadata(),
		BlobDir:       dir,
		CheckAdmin:    check,
		Logger:        logger,
		PingChallenge: *challenge,
	}))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("listening on http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
