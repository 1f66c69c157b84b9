package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/mesh/api"
)

func newStatusCmd(g *globals, stdout io.Writer) *cobra.Command {
	var apiAddr string
	var asJSON, watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status [--api ADDR] [--json] [--watch]",
		Short: "Show a node's view of its site: members, roles, versions, phases, progress, leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c := api.NewClient(apiAddr)
			for {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					if err := json.NewEncoder(stdout).Encode(st); err != nil {
						return err
					}
				} else {
					if watch {
						fmt.Fprint(stdout, "\x1b[H\x1b[2J") // cursor home, clear screen
					}
					renderStatus(stdout, st)
				}
				if !watch {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	cmd.Flags().StringVar(&apiAddr, "api", "127.0.0.1:7070", "the node's API: host:port, or unix:/path for a unix socket")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	cmd.Flags().BoolVar(&watch, "watch", false, "refresh in place until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh interval with --watch")
	return cmd
}

func renderStatus(w io.Writer, st *api.Status) {
	fmt.Fprintf(w, "node %s (%s) of site %s\n", shortID(st.ID), st.Role, st.Site)
	fmt.Fprintf(w, "running %s; staging %s: %s, %d/%d chunks; %s from peers, %s served, %s from the CDN; %d peers\n",
		orNone(st.Running), st.Release, st.Phase, st.Have, st.Total, humanBytes(st.Exchange.Received), humanBytes(st.Exchange.Served), humanBytes(st.BytesFromCDN), st.Peers)
	if st.Err != "" {
		fmt.Fprintf(w, "last error: %s\n", st.Err)
	}
	if st.SiteView == nil {
		return
	}
	s := st.SiteView
	leader := "none"
	if s.Leader != "" {
		leader = fmt.Sprintf("%s (term %d)", shortID(s.Leader), s.Term)
	}
	fmt.Fprintf(w, "site: leader %s, target %s, %d members, gossip health %d\n", leader, s.Target, len(s.Members), s.GossipHealth)
	renderRollout(w, s)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tADDR\tRUNNING\tSTAGED\tPHASE\tPROGRESS\tHEALTH\tSTATE")
	for _, m := range s.Members {
		role := m.Role.String()
		if m.Leader {
			role += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%3.0f%%\t%s\t%s\n", shortID(m.ID), role, m.Addr, orNone(m.Running), orNone(m.Staged), m.Phase, 100*m.Progress, m.Health, m.State)
	}
	tw.Flush()
}

// renderRollout writes the site's rollout of its target: its state, and
// each wave with its members and its gate.
func renderRollout(w io.Writer, s *api.SiteStatus) {
	if s.RolloutState == "" {
		return
	}
	r := s.Rollout
	if r == nil {
		fmt.Fprintf(w, "rollout of %s: %s (waiting until every member verified it)\n", s.Target, s.RolloutState)
		return
	}
	line := fmt.Sprintf("rollout of %s: %s", r.Release.WithoutID(), r.State)
	if r.State == deploy.RolloutWaveOpen || r.State == deploy.RolloutPaused {
		line += fmt.Sprintf(", wave %d open (waves 0 to %d)", r.Wave, len(r.Waves)-1)
	}
	if !r.EndedAt.IsZero() {
		line += fmt.Sprintf(", %s from start to end", r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond))
	}
	if r.Previous != "" {
		line += ", previous " + r.Previous
	}
	if r.Reason != "" {
		line += ": " + r.Reason
	}
	fmt.Fprintln(w, line)
	for i, wv := range r.Waves {
		ids := make([]string, len(wv.Members))
		for j, id := range wv.Members {
			ids[j] = shortID(id)
		}
		gate := "not opened"
		switch {
		case wv.Gate != nil && wv.Gate.Passed:
			gate = "passed: " + wv.Gate.Reason
		case wv.Gate != nil:
			gate = "FAILED: " + wv.Gate.Reason
		case !wv.OpenedAt.IsZero():
			gate = "open since " + wv.OpenedAt.Format(time.TimeOnly)
		}
		name := fmt.Sprintf("wave %d", i) // numbered from 0, as the gates' reasons count them
		if i == 0 {
			name += " (canary)"
		}
		fmt.Fprintf(w, "  %s: %d member(s) %s; %s\n", name, len(ids), strings.Join(ids, " "), gate)
	}
	for _, x := range r.Excluded {
		fmt.Fprintf(w, "  excluded %s: %s\n", shortID(x.ID), x.Reason)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[len(id)-12:]
	}
	return id
}

// orNone writes a release as a cell of a table: "-" for none.
func orNone(r content.Release) string {
	if r.IsZero() {
		return "-"
	}
	return r.String()
}
