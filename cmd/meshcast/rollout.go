package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/meshcast/meshcast/mesh/api"
)

func newRolloutCmd(g *globals, stdout io.Writer) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "rollout pause|resume|abort --api ADDR",
		Short: "Pause, resume or abort the site's rollout of its target (any member's API carries it to the leader)",
		Long: `Operator commands for the rollout of the release the site stages. They are
decided through the site's Raft, so any seeder's or node's API may be asked:
a node hands the command to a seeder, a seeder that does not lead forwards it
to the leader.

  pause   no wave opens and no gate is taken until resume; nodes of an open
          wave that have not activated wait
  resume  continues where pause stopped; an open wave's health clock restarts
  abort   ends the rollout: no wave opens, and the nodes that activated the
          release return to the one the site ran (never below the release's
          security floor)`,
	})
	for _, op := range []string{"pause", "resume", "abort"} {
		var apiAddr, reason string
		sub := &cobra.Command{
			Use:   op + " [--api ADDR] [--reason TEXT]",
			Short: op + " the site's rollout",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				answer, err := api.NewClient(apiAddr).Rollout(cmd.Context(), op, reason)
				if err != nil {
					return err
				}
				fmt.Fprint(stdout, answer)
				return nil
			},
		}
		sub.Flags().StringVar(&apiAddr, "api", "127.0.0.1:7070", "a member's API: host:port or unix:/path")
		sub.Flags().StringVar(&reason, "reason", "", "why, kept in the rollout (at most 256 bytes)")
		cmd.AddCommand(sub)
	}
	return cmd
}
