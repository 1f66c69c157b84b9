package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/seeder/cdn"
)

type fetchOpts struct {
	cdnURL, trust, state, release, platform, out string
	caFile, certFile, keyFile                    string
	parallel                                     int
	idle                                         time.Duration
	asJSON, dropPrivileges                       bool
}

func newFetchCmd(g *globals, stdout io.Writer) *cobra.Command {
	o := &fetchOpts{}
	cmd := &cobra.Command{
		Use:   "fetch --cdn URL --trust ROOT_JSON --state DIR --release NAME[@VER] --out DIR",
		Short: "Download, verify and assemble one release straight from the CDN (no mesh)",
		Long: `Refreshes the TUF metadata against the trusted root, verifies the release
manifest, fetches only the chunks the local store (DIR/chunks) lacks with a few
coalesced Range requests, verifies every chunk and assembles the release into
--out, which must not exist or be empty. Failed requests are retried with
backoff; a request is abandoned only when no byte arrives for --idle-timeout.
An interrupted fetch resumes without fetching again what it verified.

A tree keeps its owners, modes, extended attributes, hard links, devices and
mtimes when meshcast runs as root (or with CAP_CHOWN, CAP_FOWNER, CAP_SETFCAP
and CAP_MKNOD). Otherwise files belong to the user running it, and a tree with
setuid or setgid files or file capabilities is refused, naming the first,
unless --drop-privileges says to assemble them without; device nodes need
CAP_MKNOD whatever the flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "cdn", "trust", "state", "release", "out"); err != nil {
				return err
			}
			return runFetch(cmd.Context(), g, o, stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cdnURL, "cdn", "", "origin base URL, e.g. https://cdn.example.com/meshcast")
	f.StringVar(&o.trust, "trust", "", "the root.json this machine trusts (metadata/1.root.json of the origin)")
	f.StringVar(&o.state, "state", "", "state directory: trusted metadata and the chunk store, kept between runs")
	f.StringVar(&o.release, "release", "", "NAME or NAME@VERSION (default: the highest signed version)")
	f.StringVar(&o.platform, "platform", runtime.GOOS+"/"+runtime.GOARCH, "platform artifact to fetch")
	f.StringVar(&o.out, "out", "", "directory to assemble the release into")
	f.StringVar(&o.caFile, "cdn-ca", "", "PEM file of CA certificates to trust for HTTPS (default: the system pool)")
	f.StringVar(&o.certFile, "cdn-cert", "", "PEM client certificate for HTTPS")
	f.StringVar(&o.keyFile, "cdn-key", "", "PEM key of the client certificate")
	f.IntVar(&o.parallel, "parallel", 4, "Range requests in flight")
	f.DurationVar(&o.idle, "idle-timeout", 30*time.Second, "abandon a request when no byte arrives for this long")
	f.BoolVar(&o.asJSON, "json", false, "print the result as one JSON object")
	f.BoolVar(&o.dropPrivileges, "drop-privileges", false, "assemble setuid and setgid files without those bits, and files without their capabilities")
	return cmd
}

func runFetch(ctx context.Context, g *globals, o *fetchOpts, stdout io.Writer) error {
	rel, err := content.ParseRelease(o.release)
	if err != nil {
		return fmt.Errorf("--release: %w", err)
	}
	root, err := os.ReadFile(o.trust)
	if err != nil {
		return fmt.Errorf("--trust: %w", err)
	}
	tlsCfg, err := clientTLS(o.caFile, o.certFile, o.keyFile)
	if err != nil {
		return err
	}
	c, err := cdn.NewClient(cdn.ClientConfig{URL: o.cdnURL, TLS: tlsCfg, Parallel: o.parallel, IdleTimeout: o.idle}, g.logger())
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := cdn.DirectFetch(ctx, c, cdn.DirectFetchOptions{
		StateDir: o.state, TrustedRoot: root, Release: rel, Platform: o.platform, Out: o.out,
		DropPrivileges: o.dropPrivileges,
	}, g.logger())
	if errors.Is(err, content.ErrPrivilege) && !errors.Is(err, content.ErrDevicePrivilege) && !o.dropPrivileges {
		return fmt.Errorf("%w; as an unprivileged user, --drop-privileges assembles setuid and setgid files without those bits and files without their capabilities", err)
	}
	if err != nil {
		return err
	}
	if o.asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "fetched %s (%s) into %s: %d chunks fetched, %d reused; %s from the CDN in %d requests, %.1fs\n",
		res.Release, res.Platform, res.Out, res.ChunksFetched, res.ChunksReused, humanBytes(res.BytesFromCDN), res.Requests, res.Seconds)
	return nil
}

// clientTLS builds the HTTPS settings from PEM files; nil when none given.
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cdn-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cdn-ca %s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("--cdn-cert and --cdn-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cdn-cert/--cdn-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
