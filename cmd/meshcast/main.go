package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set with -ldflags "-X main.version=…" by release builds.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshcast:", err)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

// globals are the flags every command shares.
type globals struct {
	logLevel string
	stderr   io.Writer
}

func (g *globals) logger() *slog.Logger { return g.loggerAt(g.logLevel) }

func (g *globals) loggerAt(level string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl}))
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stderr: stderr}
	root := &cobra.Command{
		Use:           "meshcast",
		Short:         "Peer-to-peer delivery of signed releases to edge sites",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error (logs go to stderr)")
	root.AddCommand(
		newKeysCmd(g, stdout),
		newRepoCmd(g, stdout),
		newPublishCmd(g, stdout),
		newCDNCmd(g, stdout),
		newFetchCmd(g, stdout),
		newDemoCmd(g, stdout),
		newNodeCmd(g, stdout),
		newSeederCmd(g, stdout),
		newStatusCmd(g, stdout),
		newRolloutCmd(g, stdout),
		newAttestCmd(g, stdout),
	)
	return root
}

// requireFlags fails with one message naming every required flag missing.
// The message names the subcommand without the binary's name, which main
// already prints in front of every error.
func requireFlags(cmd *cobra.Command, names ...string) error {
	var missing []string
	for _, n := range names {
		if f := cmd.Flags().Lookup(n); f == nil || !f.Changed {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		sub := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
		return fmt.Errorf("%s: missing %s", sub, strings.Join(missing, ", "))
	}
	return nil
}

// group makes a command that only holds subcommands: run alone it prints
// its help; run with an unknown subcommand it fails and says so (cobra
// otherwise prints the help and exits 0, hiding a typo from a script).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return cmd
}
