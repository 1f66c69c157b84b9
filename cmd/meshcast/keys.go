package main

import (
	"fmt"
	"io"

	"github.com/meshcast/meshcast/content/origin"
	"github.com/spf13/cobra"
)

func newKeysCmd(g *globals, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage TUF signing keys"}
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
	cmd.AddCommand(initCmd)
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
