package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/meshcast/meshcast/tests/baseline"
	"github.com/meshcast/meshcast/tests/scenario"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench publish|delta [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	asJSON := fs.Bool("json", false, "print one JSON object")
	keep := fs.String("dir", "", "work directory (default: a temporary one, removed afterwards)")
	verbose := fs.Bool("v", false, "log progress")
	seed := fs.Uint64("seed", 1, "generator seed")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file: of the whole run, or for site of the capped distribution alone")
	var res any
	var err error
	work := func() (string, func(), error) {
		if *keep != "" {
			return *keep, func() {}, os.MkdirAll(*keep, 0o755)
		}
		d, err := os.MkdirTemp("", "meshcast-bench-")
		return d, func() { os.RemoveAll(d) }, err
	}
	log := slog.New(slog.DiscardHandler)
	switch name {
	case "publish":
		size := fs.String("size", "1G", "image size (K, M, G suffixes)")
		runs := fs.Int("runs", 3, "alternating runs of each side")
		level := fs.Int("level", 0, "publish zstd level (0: the default)")
		fs.Parse(args)
		defer startProfile(*cpuprofile)()
		n, perr := parseSize(*size)
		if perr != nil {
			return perr
		}
		dir, done, werr := work()
		if werr != nil {
			return werr
		}
		defer done()
		if *verbose {
			log = slog.Default()
		}
		res, err = scenario.PublishSpeed(ctx, scenario.PublishSpeedOptions{Dir: dir, Size: n, Seed: *seed, Runs: *runs, Level: *level}, log)
	case "delta":
		files := fs.Int("files", 0, "files in the tree (0: 3000)")
		bytes := fs.String("bytes", "0", "bytes in the tree (0: 300M)")
		maxFiles := fs.Int("max-files", 10, "files the upgrade may touch")
		level := fs.Int("level", 0, "publish zstd level (0: the default)")
		fs.Parse(args)
		defer startProfile(*cpuprofile)()
		n, perr := parseSize(*bytes)
		if perr != nil {
			return perr
		}
		dir, done, werr := work()
		if werr != nil {
			return werr
		}
		defer done()
		if *verbose {
			log = slog.Default()
		}
		res, err = scenario.Delta(ctx, scenario.DeltaOptions{Dir: dir, Seed: *seed, Files: *files, Bytes: n, MaxFiles: *maxFiles, Level: *level}, log)
	case "site":
		nodes := fs.Int("nodes", 10, "nodes")
		seeders := fs.Int("seeders", 1, "seeders")
		size := fs.String("size", "256M", "release size (incompressible random bytes; K, M, G suffixes)")
		wan := fs.String("wan", "100M", "the CDN's cap in bits per second (K, M, G are powers of 1000 here; 0: none)")
		lan := fs.String("lan", "0", "each member's cap each way in bits per second (0: none)")
		skipDirect := fs.Bool("skip-direct", false, "leave out the direct fetch baseline")
		skipEff := fs.Bool("skip-efficiency", false, "leave out the uncapped run, the raw stream and bitswap")
		skipBitswap := fs.Bool("skip-bitswap", false, "leave out bitswap")
		fs.Parse(args)
		n, perr := parseSize(*size)
		if perr != nil {
			return perr
		}
		w, perr := parseRate(*wan)
		if perr != nil {
			return perr
		}
		l, perr := parseRate(*lan)
		if perr != nil {
			return perr
		}
		dir, done, werr := work()
		if werr != nil {
			return werr
		}
		defer done()
		tb, cleanup := scenario.NewCommandTB(dir)
		defer cleanup()
		res, err = scenario.Site(ctx, tb, scenario.SiteOptions{
			Dir: dir, Nodes: *nodes, Seeders: *seeders, Size: n, WAN: w, LAN: l,
			SkipDirect: *skipDirect, SkipEfficiency: *skipEff, SkipBitswap: *skipBitswap,
			Bitswap: bitswapBaseline,
			Profile: func() func() { return startProfile(*cpuprofile) },
		}, log)
	default:
		return fmt.Errorf("unknown scenario %q (want publish, delta or site)", name)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	printTable(res)
	return nil
}

// printTable prints a result struct as "field  value" rows.
func printTable(res any) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	v := reflect.ValueOf(res).Elem()
	for i := 0; i < v.NumField(); i++ {
		name := strings.Split(v.Type().Field(i).Tag.Get("json"), ",")[0]
		f := v.Field(i).Interface()
		if x, ok := f.(float64); ok {
			f = strconv.FormatFloat(x, 'f', 3, 64)
		}
		fmt.Fprintf(tw, "%s\t%v\n", name, f)
	}
	tw.Flush()
}

// parseRate reads bits per second with K, M or G (powers of 1000).
func parseRate(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1e3, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rate %q: %w", s, err)
	}
	return n * mult, nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n * mult, nil
}

// bitswapBaseline runs boxo bitswap over the same chunks and topology.
func bitswapBaseline(ctx context.Context, blocks [][]byte, nodes int) (float64, error) {
	r, err := baseline.Bitswap(ctx, blocks, nodes, nil)
	if err != nil {
		return 0, err
	}
	return r.Seconds, nil
}

// startProfile starts a CPU profile into path ("" : none) and returns what
// stops it.
func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: cpu profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "bench: cpu profile:", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
