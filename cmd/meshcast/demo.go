package main

import (
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
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

type demoOpts struct {
	dir  string
	keep bool
	rate string
}

func newDemoCmd(g *globals, stdout io.Writer) *cobra.Command {
	o := &demoOpts{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Publish a sample release and its update to a local CDN and fetch both back",
		Long: `Runs the publish side end to end on loopback with a built-in sample: signing
keys, an origin, a release v1.0.0 (this meshcast binary and a small tree of
configuration and documentation), a CDN with a bandwidth cap, a verified fetch
of v1.0.0, then v1.1.0 (a patched binary, an edited config, a longer
changelog) published and fetched by the same node, which downloads only what
changed. Nothing leaves the machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), g, o, stdout) },
	}
	cmd.Flags().StringVar(&o.dir, "dir", "", "work directory, new or empty (default: a new temporary directory)")
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the work directory")
	cmd.Flags().StringVar(&o.rate, "rate", "12M", "CDN bandwidth cap in bytes per second (K, M, G suffixes)")
	return cmd
}

func runDemo(ctx context.Context, g *globals, o *demoOpts, stdout io.Writer) error {
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
	d := &demo{dir: dir, log: g.logger(), stdout: stdout}
	if g.logLevel == "info" {
		d.log = g.loggerAt("warn") // the table below says what happened
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
	client, err := cdn.NewClient(cdn.ClientConfig{URL: url}, d.log)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := d.publishAndFetch(ctx, repo, client); err != nil {
		return err
	}
	d.say("both releases verified (TUF metadata, every chunk, every file's sha256) and assembled under %s", filepath.Join(d.state(), "releases"))
	if o.keep {
		d.say("try: meshcast fetch --cdn URL --trust %s --state %s --release demo-gateway --out /tmp/x", d.rootFile(), d.state())
	}
	return nil
}

// demo is one run of the demo, in its work directory.
type demo struct {
	dir    string
	log    *slog.Logger
	stdout io.Writer
	keys   origin.Keys
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.stdout, "• "+format+"\n", args...) }

func (d *demo) originDir() string { return filepath.Join(d.dir, "origin") }
func (d *demo) rootFile() string  { return filepath.Join(d.originDir(), "metadata", "1.root.json") }
func (d *demo) state() string     { return filepath.Join(d.dir, "node") }
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
	if err := writeSample(d.input("v1"), d.input("v2")); err != nil {
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

// publishAndFetch publishes v1.0.0 and v1.1.0 of the sample and fetches
// each after it is published, printing a table of what each step cost.
func (d *demo) publishAndFetch(ctx context.Context, repo *origin.Repo, client *cdn.Client) error {
	root, err := os.ReadFile(d.rootFile())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(d.stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tinput\tchunks\tnew\twritten to origin\tfrom CDN\trequests\tseconds\t")
	for _, step := range []struct{ ver, in string }{{"1.0.0", d.input("v1")}, {"1.1.0", d.input("v2")}} {
		pr, err := repo.Publish(ctx, d.keys, origin.PublishOptions{Name: "demo-gateway", Version: step.ver,
			Artifacts: map[string]string{"linux/amd64": step.in, "linux/arm64": step.in}}, d.log)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "publish %s\t%s\t%d\t%d\t%s\t\t\t%.2f\t\n", step.ver, humanBytes(pr.InputBytes/2), pr.Chunks, pr.NewChunks, humanBytes(pr.NewBytes), pr.Seconds)
		fr, err := cdn.DirectFetch(ctx, client, cdn.DirectFetchOptions{
			StateDir: d.state(), TrustedRoot: root, Release: content.Release{Name: "demo-gateway", Version: step.ver}, Platform: "linux/amd64",
			Out: filepath.Join(d.state(), "releases", step.ver),
		}, d.log)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "fetch %s\t\t%d\t%d\t\t%s\t%d\t%.2f\t\n", step.ver, fr.ChunksFetched+fr.ChunksReused, fr.ChunksFetched, humanBytes(fr.BytesFromCDN), fr.Requests, fr.Seconds)
	}
	return tw.Flush()
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

// writeSample writes the demo's two input trees: v1 holds this binary and
// a small tree of text; v2 patches the binary, edits the config and adds
// to the changelog, like a package upgrade.
func writeSample(v1, v2 string) error {
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
	return write(v2, bin2, conf2, "1.1.0: faster rollouts\n"+text(40)+changelog)
}
