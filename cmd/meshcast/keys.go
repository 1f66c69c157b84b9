package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/meshcast/meshcast/content/origin"
)

func newKeysCmd(g *globals, stdout io.Writer) *cobra.Command {
	cmd := group(&cobra.Command{Use: "keys", Short: "Manage TUF signing keys"})
	var dir string
	initCmd := &cobra.Command{
		Use:   "init --dir KEYS",
		Short: "Create ed25519 keys for the root, targets, snapshot and timestamp roles",
		Long: `Creates KEYS/root.key, targets.key, snapshot.key and timestamp.key (PKCS#8 PEM,
mode 0600). Existing keys are never overwritten. Keep root.key offline once the
origin is initialised; publish needs targets, snapshot and timestamp.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "dir"); err != nil {
				return err
			}
			return runKeysInit(dir, stdout)
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory for the key files (created 0700)")
	var file string
	gossipCmd := &cobra.Command{
		Use:   "gossip --file FILE",
		Short: "Create a site gossip key (AES-256, base64) in a new file, mode 0600",
		Long: `Creates the key that encrypts a site's gossip. Give the file to every member
with --gossip-key-file. To rotate: add a new key as a later line on every
member and restart them, move it to the first line everywhere, then remove
the old line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "file"); err != nil {
				return err
			}
			k := make([]byte, 32)
			if _, err := rand.Read(k); err != nil {
				return err
			}
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("keys gossip: %w", err)
			}
			_, err = fmt.Fprintln(f, base64.StdEncoding.EncodeToString(k))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				fmt.Fprintln(stdout, file)
			}
			return err
		},
	}
	gossipCmd.Flags().StringVar(&file, "file", "", "file to create")
	cmd.AddCommand(initCmd, gossipCmd)
	return cmd
}

func runKeysInit(dir string, stdout io.Writer) error {
	if _, err := origin.GenerateKeys(dir); err != nil {
		return err
	}
	for _, role := range origin.Roles {
		fmt.Fprintln(stdout, origin.KeyFile(dir, role))
	}
	return nil
}
