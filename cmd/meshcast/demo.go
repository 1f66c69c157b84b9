package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

type demoOpts struct {
	dir   string
	keep  bool
	rate  string
	nodes int
}

func newDemoCmd(g *globals, stdout io.Writer) *cobra.Command {
	o := &demoOpts{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the main job on loopback: a CDN, a site of 10 members, three releases rolled out in waves",
		Long: `Runs meshcast's main job end to end on loopback with a built-in sample, in one
process: signing keys, an origin, a CDN with a bandwidth cap, and a site of 3
seeders and 7 nodes (Raft among the seeders, encrypted gossip, QUIC between
all). Three releases of a sample gateway (this meshcast binary and a small tree
of configuration and documentation) are published with a policy of waves 10,
50 and 100 %, each member healthy for 1 s, no failure allowed:

  1.0.0  the leading seeder fetches it from the CDN once and the site shares
         it; then it activates wave by wave
  1.1.0  an update (a patched binary, an edited config, a longer changelog):
         the CDN serves only the changed bytes, once for the whole site
  1.2.0  a small change with a bug: the canary activates it, fails its health
         hook and rolls back; the rollout stops there and the site stays on
         1.1.0

A table shows each member live, and a summary ends the run. Nothing leaves the
machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), g, o, stdout) },
	}
	cmd.Flags().StringVar(&o.dir, "dir", "", "work directory, new or empty (default: a new temporary directory)")
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the work directory")
	cmd.Flags().StringVar(&o.rate, "rate", "12M", "CDN bandwidth cap in bytes per second (K, M, G suffixes)")
	cmd.Flags().IntVar(&o.nodes, "nodes", 7, "nodes in the site besides its 3 seeders (1 to 50)")
	return cmd
}

func runDemo(ctx context.Context, g *globals, o *demoOpts, stdout io.Writer) error {
	if o.nodes < 1 || o.nodes > 50 {
		return fmt.Errorf("--nodes %d: want 1 to 50", o.nodes)
	}
	start := time.Now()
	rate, err := parseSize(o.rate)
	if err != nil {
		return fmt.Errorf("--rate: %w", err)
	}
	dir, cleanup, err := demoWorkDir(o.dir)
	if err != nil {
		return err
	}
	if !o.keep {
		defer cleanup()
	}
	d := &demo{dir: dir, log: g.logger(), stdout: stdout, nodes: o.nodes}
	if g.logLevel == "info" {
		// The tables below say what happened; warnings and errors still
		// show, but for the expected ones while members join and leave
		// the site (startSite, demoSite.stop), and after the live table
		// on a terminal (watch).
		d.level, d.logs = new(slog.LevelVar), &heldWriter{w: g.stderr}
		d.level.Set(slog.LevelWarn)
		d.log = slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: d.level}))
	}
	d.say("work directory %s", dir)
	repo, err := d.newOrigin()
	if err != nil {
		return err
	}
	defer repo.Close()
	url, stop, err := d.serve(ctx, rate)
	if err != nil {
		return err
	}
	defer stop()
	d.say("CDN serving the origin at %s, capped at %s/s", url, humanBytes(rate))
	site, err := d.startSite(ctx, url)
	if err != nil {
		return err
	}
	defer site.stop() // stops the members before the CDN stops
	releases, err := site.releaseAll(ctx, repo)
	if err != nil {
		return err
	}
	d.summary(releases)
	t0 := time.Now()
	site.stop()
	d.say("site stopped in %.1f s (each member said goodbye, the leading seeder handed its leadership off); the demo took %.1f s",
		time.Since(t0).Seconds(), time.Since(start).Seconds())
	if o.keep {
		d.say("kept: each member's state under %s/<member> (releases/%s/current links the version it runs; journal is its activations' journal), the origin in %s, the hooks in %s",
			filepath.Join(dir, "site"), demoName, d.originDir(), filepath.Join(dir, "hooks"))
	}
	return nil
}

// demo is one run of the demo, in its work directory.
type demo struct {
	nodes  int // besides the demoSeeders
	dir    string
	log    *slog.Logger
	stdout io.Writer
	keys   origin.Keys
	cdn    *devserver.Server
	level  *slog.LevelVar // the log's level, when the demo chose it
	logs   *heldWriter    // where that log goes
}

// heldWriter passes what is written to w, except while held: then it keeps
// it (up to maxHeld bytes) until release, so that the members' logs do not
// tear the live table on a terminal.
type heldWriter struct {
	mu      sync.Mutex
	w       io.Writer
	held    bool
	buf     bytes.Buffer
	dropped int
}

const maxHeld = 1 << 20

func (h *heldWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.held:
		return h.w.Write(p)
	case h.buf.Len()+len(p) > maxHeld:
		h.dropped += len(p)
	default:
		h.buf.Write(p)
	}
	return len(p), nil
}

func (h *heldWriter) hold() {
	h.mu.Lock()
	h.held = true
	h.mu.Unlock()
}

// release writes what was held, and passes writes through again.
func (h *heldWriter) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = false
	h.w.Write(h.buf.Bytes())
	if h.dropped > 0 {
		fmt.Fprintf(h.w, "(%d bytes of log dropped)\n", h.dropped)
	}
	h.buf.Reset()
	h.dropped = 0
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.stdout, "• "+format+"\n", args...) }

func (d *demo) originDir() string { return filepath.Join(d.dir, "origin") }
func (d *demo) rootFile() string  { return filepath.Join(d.originDir(), "metadata", "1.root.json") }
func (d *demo) input(v string) string {
	return filepath.Join(d.dir, "input", v)
}

// newOrigin makes the signing keys, a TUF origin and the sample inputs,
// and opens the origin's repository.
func (d *demo) newOrigin() (*origin.Repo, error) {
	keyDir := filepath.Join(d.dir, "keys")
	var err error
	if d.keys, err = origin.GenerateKeys(keyDir); err != nil {
		return nil, err
	}
	if err := origin.Init(d.originDir(), d.keys, origin.DefaultExpiries(), time.Now()); err != nil {
		return nil, err
	}
	d.say("signing keys in %s, TUF origin in %s", keyDir, d.originDir())
	if err := writeSample(d.input("v1"), d.input("v2"), d.input("v3")); err != nil {
		return nil, fmt.Errorf("demo sample: %w", err)
	}
	return origin.Open(d.originDir())
}

// serve runs the development origin over the demo's origin on loopback,
// capped at rate, until stop is called.
func (d *demo) serve(ctx context.Context, rate int64) (url string, stop func(), err error) {
	srv, err := devserver.New(devserver.Config{Dir: d.originDir(), Rate: rate, Gzip: true}, d.log, nil)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	d.cdn = srv
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(sctx, ln); err != nil {
			d.log.Error("demo CDN", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { cancel(); <-done }, nil
}

// demoWorkDir returns the demo's work directory and a function that removes
// what the demo put there. A --dir must be new or empty, so that the demo
// never removes anything it did not create.
func demoWorkDir(dir string) (string, func(), error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "meshcast-demo-")
		if err != nil {
			return "", nil, err
		}
		return d, func() { os.RemoveAll(d) }, nil
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", nil, fmt.Errorf("--dir: %w", err)
		}
		return dir, func() { os.RemoveAll(dir) }, nil
	case err != nil:
		return "", nil, fmt.Errorf("--dir: %w", err)
	case len(ents) > 0:
		return "", nil, fmt.Errorf("--dir %s is not empty; give a new or an empty directory", dir)
	}
	return dir, func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}, nil
}

// writeSample writes the demo's three input trees: v1 holds this binary
// and a small tree of text; v2 patches the binary, edits the config and
// adds to the changelog, like a package upgrade; v3 changes one line of
// v2's config and adds to its changelog.
func writeSample(v1, v2, v3 string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("gateway site seeder node chunk release wave health rollback verify fetch peer quic raft tuf manifest pack origin cdn mesh")
	text := func(lines int) string {
		var b strings.Builder
		for i := 0; i < lines; i++ {
			for j := 0; j < 6+rng.IntN(8); j++ {
				b.WriteString(words[rng.IntN(len(words))])
				b.WriteByte(' ')
			}
			b.WriteByte('\n')
		}
		return b.String()
	}
	conf := text(200)
	changelog := text(3000)
	docs := make([]string, 40)
	for i := range docs {
		docs[i] = text(50 + rng.IntN(400))
	}
	write := func(root string, bin []byte, conf, changelog string) error {
		files := map[string][]byte{
			"bin/gatewayd":              bin,
			"etc/gateway.conf":          []byte(conf),
			"share/doc/CHANGELOG":       []byte(changelog),
			"share/doc/README":          []byte(docs[0]),
			"var/lib/gateway/.keep":     nil,
			"share/locale/en/messages":  []byte(docs[1]),
			"share/locale/de/messages":  []byte(docs[2]),
			"lib/plugins/health.conf":   []byte(docs[3]),
			"lib/plugins/rollback.conf": []byte(docs[4]),
		}
		for i, d := range docs[5:] {
			files[fmt.Sprintf("share/doc/guide/%02d.txt", i)] = []byte(d)
		}
		for p, b := range files {
			full := filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if strings.HasPrefix(p, "bin/") {
				mode = 0o755
			}
			if err := os.WriteFile(full, b, mode); err != nil {
				return err
			}
		}
		return os.Symlink("gatewayd", filepath.Join(root, "bin", "gw"))
	}
	if err := write(v1, bin, conf, changelog); err != nil {
		return err
	}
	// The update: a patch in the middle of the binary, two config lines
	// changed, news at the top of the changelog.
	bin2 := append([]byte(nil), bin...)
	mid := len(bin2) / 2
	for i := mid; i < mid+4096 && i < len(bin2); i++ {
		bin2[i] ^= 0x5a
	}
	conf2 := strings.Replace(strings.Replace(conf, "health", "HEALTH", 1), "wave", "WAVE", 1)
	changelog2 := "1.1.0: faster rollouts\n" + text(40) + changelog
	if err := write(v2, bin2, conf2, changelog2); err != nil {
		return err
	}
	conf3 := strings.Replace(conf2, "peer", "PEER", 1)
	return write(v3, bin2, conf3, "1.2.0: a new upstream pool\n"+text(5)+changelog2)
}
