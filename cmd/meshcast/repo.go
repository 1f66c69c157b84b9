package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshcast/meshcast/content/origin"
)

func addExpiryFlags(fs *pflag.FlagSet, e *origin.Expiries) {
	d := origin.DefaultExpiries()
	fs.DurationVar(&e.Root, "root-expiry", d.Root, "validity of root metadata")
	fs.DurationVar(&e.Targets, "targets-expiry", d.Targets, "validity of targets metadata")
	fs.DurationVar(&e.Snapshot, "snapshot-expiry", d.Snapshot, "validity of snapshot metadata")
	fs.DurationVar(&e.Timestamp, "timestamp-expiry", d.Timestamp, "validity of timestamp metadata")
}

func newRepoCmd(g *globals, stdout io.Writer) *cobra.Command {
	cmd := group(&cobra.Command{Use: "repo", Short: "Manage a release origin (the directory a CDN serves)"})

	var repo, keys string
	var exp origin.Expiries
	initCmd := &cobra.Command{
		Use:   "init --repo ORIGIN --keys KEYS",
		Short: "Create the signed TUF metadata of a new origin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "repo", "keys"); err != nil {
				return err
			}
			k, err := origin.LoadKeys(keys, origin.Roles...)
			if err != nil {
				return err
			}
			if err := origin.Init(repo, k, exp, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "initialised %s; devices trust %s\n", repo, filepath.Join(repo, "metadata", "1.root.json"))
			return nil
		},
	}
	initCmd.Flags().StringVar(&repo, "repo", "", "origin directory")
	initCmd.Flags().StringVar(&keys, "keys", "", "key directory (from meshcast keys init)")
	addExpiryFlags(initCmd.Flags(), &exp)

	var rrepo, rkeys string
	var rexp origin.Expiries
	var asJSON bool
	refreshCmd := &cobra.Command{
		Use:   "refresh --repo ORIGIN --keys KEYS",
		Short: "Re-sign the timestamp (and snapshot and targets when due) before they expire; run from cron",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "repo", "keys"); err != nil {
				return err
			}
			return runRepoRefresh(rrepo, rkeys, rexp, asJSON, stdout)
		},
	}
	refreshCmd.Flags().StringVar(&rrepo, "repo", "", "origin directory")
	refreshCmd.Flags().StringVar(&rkeys, "keys", "", "key directory holding snapshot.key and timestamp.key (and targets.key to renew targets)")
	refreshCmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	addExpiryFlags(refreshCmd.Flags(), &rexp)

	cmd.AddCommand(initCmd, refreshCmd)
	return cmd
}

func runRepoRefresh(repo, keyDir string, exp origin.Expiries, asJSON bool, stdout io.Writer) error {
	k, err := origin.LoadKeys(keyDir, "snapshot", "timestamp")
	if err != nil {
		return err
	}
	// The targets key is optional (without it targets is not renewed), but
	// one that is there and cannot be used must not be skipped in silence:
	// targets would expire on the fleet with nobody told.
	if _, err := os.Lstat(origin.KeyFile(keyDir, "targets")); !errors.Is(err, fs.ErrNotExist) {
		tk, err := origin.LoadKeys(keyDir, "targets")
		if err != nil {
			return err
		}
		k["targets"] = tk["targets"]
	}
	r, err := origin.Open(repo)
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := r.Refresh(k, exp, time.Now())
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "re-signed %v; timestamp valid until %s, snapshot until %s, targets until %s\n",
		res.Resigned, res.TimestampExpires.Format(time.RFC3339), res.SnapshotExpires.Format(time.RFC3339), res.TargetsExpires.Format(time.RFC3339))
	if res.RootExpiresWithin {
		fmt.Fprintf(stdout, "warning: root metadata expires %s; sign a new root with the offline root key\n", res.RootExpires.Format(time.RFC3339))
	}
	return nil
}
