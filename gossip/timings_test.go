package gossip

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/meshcast/meshcast/deploy"
)

// TestProfileTimings measures, for each profile in a site of 10, how long
// a status change takes to reach every member and a crash to be reported
// by every member: the figures doc.go documents. Opt-in, as the lan
// profile takes about 20 s: GOSSIP_TIMINGS=1 go test -run ProfileTimings -v
func TestProfileTimings(t *testing.T) {
	if os.Getenv("GOSSIP_TIMINGS") == "" {
		t.Skip("set GOSSIP_TIMINGS=1 to measure the profiles' timings")
	}
	for _, prof := range []string{ProfileTest, ProfileLAN} {
		t.Run(prof, func(t *testing.T) {
			p := profiles[prof]
			nodes := newCluster(t, prof, 10, func(c *Config) { c.Profile, c.BindPort = prof, AnyPort })
			var spreads []time.Duration
			for i := range 5 {
				src := nodes[i]
				m := testMeta(src.name)
				m.Phase = deploy.Phase(i % 3)
				start := time.Now()
				if err := src.SetMeta(m); err != nil {
					t.Fatal(err)
				}
				var slowest time.Duration
				for _, n := range nodes {
					e, ok := n.rec.waitEvent(converge, func(e Event) bool { return e.Kind == EventUpdate && e.Member.Meta == m })
					if !ok {
						t.Fatalf("%s did not see %s's update", n.name, src.name)
					}
					slowest = max(slowest, e.at.Sub(start))
				}
				spreads = append(spreads, slowest)
			}
			slices.Sort(spreads)
			t.Logf("%s: status change reached all 10 members in %v (median %v, max %v; documented %v)",
				prof, spreads, spreads[len(spreads)/2], spreads[len(spreads)-1], p.spread)

			for _, victim := range []*tnode{nodes[9], nodes[8]} {
				start := time.Now()
				if err := victim.Close(); err != nil {
					t.Fatal(err)
				}
				var first, slowest time.Duration
				for _, n := range nodes {
					if n == nodes[9] || n == victim {
						continue
					}
					e, ok := n.rec.waitEvent(4*p.detect, func(e Event) bool { return e.Kind == EventFail && e.Member.Name == victim.name })
					if !ok {
						t.Fatalf("%s did not report %s failed within %v", n.name, victim.name, 4*p.detect)
					}
					took := e.at.Sub(start)
					slowest = max(slowest, took)
					if first == 0 || took < first {
						first = took
					}
				}
				t.Logf("%s: crash of %s reported by the first member after %v, by all after %v (documented %v)",
					prof, victim.name, first.Round(time.Millisecond), slowest.Round(time.Millisecond), p.detect)
			}
		})
	}
}
