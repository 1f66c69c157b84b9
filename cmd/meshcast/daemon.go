package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/mesh"
	"github.com/meshcast/meshcast/mesh/api"
	"github.com/meshcast/meshcast/seeder"
)

type daemonOpts struct {
	cfg       mesh.Config
	trust     string
	api       string
	upload    string
	download  string
	gossipAt  string
	gossipKey string
	profile   string
}

func newNodeCmd(g *globals, stdout io.Writer) *cobra.Command {
	return newDaemonCmd(g, stdout, gossip.RoleNode, "node", "Run a gateway: get releases from the site's peers and share them")
}

func newSeederCmd(g *globals, stdout io.Writer) *cobra.Command {
	cmd := newDaemonCmd(g, stdout, gossip.RoleSeeder, "seeder", "Run a site server: fetch from the CDN what the site lacks and spread it")
	var apiAddr string
	remove := &cobra.Command{
		Use:   "remove --api LEADER_API PEER_ID",
		Short: "Remove a dead seeder from the site's Raft (ask the leader's API)",
		Long: `Removes a seeder that will not come back from the site's Raft voters, so that
the remaining seeders keep their quorum. Ask the leader: meshcast status shows
which seeder leads.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			answer, err := api.NewClient(apiAddr).RemoveSeeder(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprint(stdout, answer)
			return nil
		},
	}
	remove.Flags().StringVar(&apiAddr, "api", "127.0.0.1:7070", "the leader's API: host:port or unix:/path")
	cmd.AddCommand(remove)
	return cmd
}

func newDaemonCmd(g *globals, stdout io.Writer, role gossip.Role, use, short string) *cobra.Command {
	o := &daemonOpts{cfg: mesh.Config{Role: role}}
	var configFile string
	cmd := &cobra.Command{
		Use:   use + " [--config FILE] --state DIR --release NAME --trust ROOT_JSON [--peer MULTIADDR …]",
		Short: short,
		Long: short + `.

The node follows the highest signed version of --release: it refreshes the
TUF metadata (a seeder from --cdn, a node from its peers), joins the
release's swarm and fetches the chunks it lacks from its peers over QUIC,
verifying each. A seeder fetches from the CDN only the chunks no peer holds
and hands each to one peer as soon as it verified it.

Until admission exists (a later issue), peers are either listed with --peer
(their /p2p/ ids are allowed) or, with --open, anyone may connect.

--config reads a YAML file whose keys are the flags' names (with '_' or
'-'), e.g. "state: /var/lib/meshcast" or "peer: [...]"; flags given on the
command line win over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				if err := applyConfigFile(cmd, configFile); err != nil {
					return err
				}
			}
			req := []string{"state", "release", "trust"}
			if role == gossip.RoleSeeder {
				req = append(req, "cdn")
			}
			if err := requireFlags(cmd, req...); err != nil {
				return err
			}
			return runDaemon(cmd.Context(), g, o, stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file (keys are flag names)")
	f.StringVar(&o.cfg.Site, "site", "default", "site name")
	f.StringVar(&o.cfg.StateDir, "state", "", "state directory (identity, chunk store, trusted metadata)")
	f.StringArrayVar(&o.cfg.Listen, "listen", nil, "QUIC listen multiaddr (repeatable; default /ip4/0.0.0.0/udp/4433/quic-v1 and the IPv6 one)")
	f.StringArrayVar(&o.cfg.Peers, "peer", nil, "multiaddr of a site peer with its /p2p/ id (repeatable)")
	f.BoolVar(&o.cfg.Open, "open", false, "let any peer connect (development only)")
	f.StringVar(&o.cfg.Release, "release", "", "name of the release the site follows")
	f.StringVar(&o.cfg.Platform, "platform", runtime.GOOS+"/"+runtime.GOARCH, "platform artifact to stage")
	f.StringVar(&o.trust, "trust", "", "the TUF root.json this node trusts initially")
	f.StringVar(&o.cfg.CDN.URL, "cdn", "", "origin base URL (seeders)")
	f.DurationVar(&o.cfg.Refresh, "refresh", 30*time.Second, "how often to check the signed metadata")
	f.StringVar(&o.upload, "upload-rate", "0", "cap on bytes per second sent to peers (K, M, G suffixes; 0: none)")
	f.StringVar(&o.download, "download-rate", "0", "cap on bytes per second received from peers (0: none)")
	f.StringArrayVar(&o.cfg.Gossip.Seeds, "join", nil, "HOST:PORT of a site member's gossip to join through (repeatable)")
	f.BoolVar(&o.cfg.MDNS, "mdns", true, "announce this member on the LAN by mDNS and join the site through members found there")
	f.StringVar(&o.gossipAt, "gossip-listen", "0.0.0.0:7946", "HOST:PORT the site's gossip listens on (UDP and TCP)")
	f.StringVar(&o.gossipKey, "gossip-key-file", "", "file holding the site's gossip keys, base64, one per line, the first one primary (meshcast keys gossip)")
	f.BoolVar(&o.cfg.Gossip.Insecure, "insecure-gossip", false, "gossip without encryption (development only)")
	f.StringVar(&o.profile, "profile", "lan", "timers of gossip and Raft: lan, or test (short, for tests on one machine)")
	if role == gossip.RoleSeeder {
		f.BoolVar(&o.cfg.Bootstrap, "bootstrap", false, "start a new site: this seeder is the first Raft voter (the others join with --join)")
	}
	f.StringVar(&o.api, "api", "127.0.0.1:7070", "local HTTP API (/v1/status, /metrics): host:port or unix:/path; empty: none")
	f.StringVar(&o.cfg.Hooks, "hooks", "", "directory of activation hooks: pre-activate, activate, health, rollback (see docs/HOOKS.md)")
	f.StringVar(&o.cfg.HealthURL, "health-url", "", "HTTP URL probed for the node's health after an activation, when there is no health hook")
	f.BoolVar(&o.cfg.DropPrivileges, "drop-privileges", false, "install releases without the setuid/setgid bits and file capabilities their trees grant")
	f.DurationVar(&o.cfg.RolloutPoll, "rollout-poll", 5*time.Second, "how often a node asks the seeders for the site's rollout, besides gossip's notices")
	return cmd
}

func runDaemon(ctx context.Context, g *globals, o *daemonOpts, stdout io.Writer) error {
	var err error
	if o.cfg.TrustedRoot, err = os.ReadFile(o.trust); err != nil {
		return fmt.Errorf("--trust: %w", err)
	}
	if o.cfg.UploadRate, err = parseSize(o.upload); err != nil {
		return fmt.Errorf("--upload-rate: %w", err)
	}
	if o.cfg.DownloadRate, err = parseSize(o.download); err != nil {
		return fmt.Errorf("--download-rate: %w", err)
	}
	if err := o.gossipConfig(); err != nil {
		return err
	}
	log := g.logger()
	n, err := mesh.New(o.cfg, log, crashOptions()...)
	if err != nil {
		return err
	}
	for _, a := range n.Addrs() {
		fmt.Fprintf(stdout, "listening on %s\n", a)
	}
	// The node runs until ctx ends (SIGINT, SIGTERM) and then, after its
	// goodbye to the site, stops; or until it fails, which stops the API.
	nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNode()
	grp, gctx := errgroup.WithContext(nodeCtx)
	if o.api != "" {
		ln, err := api.Listen(o.api)
		if err != nil {
			n.Close()
			return fmt.Errorf("--api: %w", err)
		}
		fmt.Fprintf(stdout, "api on http://%s/v1/status\n", ln.Addr())
		srv := &http.Server{Handler: api.Handler(n), ReadHeaderTimeout: 10 * time.Second}
		grp.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
		grp.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	grp.Go(func() error {
		err := n.Run(gctx)
		if err == nil {
			err = context.Canceled // stop the API too
		}
		return err
	})
	grp.Go(func() error {
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
			n.Leave(lctx)
			cancel()
			stopNode()
		case <-gctx.Done():
		}
		return nil
	})
	grp.Go(func() error {
		select {
		case <-n.Ready():
			fmt.Fprintf(stdout, "gossip on %s\n", n.GossipAddr())
		case <-gctx.Done():
		}
		return nil
	})
	grp.Go(func() error { systemdNotify(gctx, n.Ready(), log); return nil })
	if err := grp.Wait(); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// leaveTimeout bounds a daemon's goodbye to its site on SIGTERM.
const leaveTimeout = 5 * time.Second

// systemdNotify tells systemd (Type=notify) that the daemon is ready once
// ready is closed, pings its watchdog (WatchdogSec=) at half the interval
// while the daemon runs, and says when it stops. Outside systemd it does
// nothing.
func systemdNotify(ctx context.Context, ready <-chan struct{}, log *slog.Logger) {
	select {
	case <-ready:
	case <-ctx.Done():
		return
	}
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("systemd notify", "err", err)
	} else if !ok {
		return // not under systemd
	}
	defer daemon.SdNotify(false, daemon.SdNotifyStopping)
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}

// gossipConfig fills the gossip and Raft settings from the flags.
func (o *daemonOpts) gossipConfig() error {
	host, port, err := net.SplitHostPort(o.gossipAt)
	if err != nil {
		return fmt.Errorf("--gossip-listen %q: %w", o.gossipAt, err)
	}
	o.cfg.Gossip.BindAddr = host
	if o.cfg.Gossip.BindPort, err = strconv.Atoi(port); err != nil {
		return fmt.Errorf("--gossip-listen %q: bad port", o.gossipAt)
	}
	switch o.profile {
	case "lan":
		o.cfg.Gossip.Profile, o.cfg.Raft = gossip.ProfileLAN, seeder.LANRaftConfig()
	case "test":
		o.cfg.Gossip.Profile, o.cfg.Raft = gossip.ProfileTest, seeder.TestRaftConfig()
	default:
		return fmt.Errorf("--profile %q: want lan or test", o.profile)
	}
	if o.gossipKey != "" {
		keys, err := readGossipKeys(o.gossipKey)
		if err != nil {
			return err
		}
		o.cfg.Gossip.Keys = keys
	}
	return nil
}

// readGossipKeys reads base64 keys, one per line; blank lines and lines
// starting with # are skipped.
func readGossipKeys(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file: %w", err)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
			return nil, fmt.Errorf("--gossip-key-file %s:%d: not a base64 key of 16, 24 or 32 bytes", path, i+1)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--gossip-key-file %s: no key", path)
	}
	return keys, nil
}
