package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/spf13/cobra"

	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

func newCDNCmd(g *globals, stdout io.Writer) *cobra.Command {
	cmd := group(&cobra.Command{Use: "cdn", Short: "A development CDN origin"})
	var cfg devserver.Config
	var listen, rate string
	serve := &cobra.Command{
		Use:   "serve --dir ORIGIN --listen ADDR [--rate BYTES_PER_SEC]",
		Short: "Serve an origin directory over HTTP with Range support, a bandwidth cap and /metrics",
		Long: `Serves ORIGIN read-only like a CDN would: single byte ranges, gzip for JSON,
cache headers for content-addressed files, Prometheus counters on /metrics
(meshcast_cdn_bytes_sent_total, meshcast_cdn_requests_total). --rate caps the
total bandwidth of all responses (a WAN link); it takes K, M and G suffixes
(powers of 1024). For development and tests; production uses any HTTP CDN or
S3-compatible store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "dir"); err != nil {
				return err
			}
			r, err := parseSize(rate)
			if err != nil {
				return fmt.Errorf("--rate: %w", err)
			}
			cfg.Rate = r
			return runCDNServe(cmd.Context(), g, cfg, listen, stdout)
		},
	}
	serve.Flags().StringVar(&cfg.Dir, "dir", "", "origin directory to serve")
	serve.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	serve.Flags().StringVar(&rate, "rate", "0", "total bandwidth cap in bytes per second (0: none)")
	serve.Flags().BoolVar(&cfg.Gzip, "gzip", true, "gzip JSON responses for clients that accept it")
	cmd.AddCommand(serve)
	return cmd
}

func runCDNServe(ctx context.Context, g *globals, cfg devserver.Config, listen string, stdout io.Writer) error {
	srv, err := devserver.New(cfg, g.logger(), nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("cdn serve: %w", err)
	}
	fmt.Fprintf(stdout, "serving %s on http://%s/\n", cfg.Dir, ln.Addr())
	return srv.Serve(ctx, ln)
}
