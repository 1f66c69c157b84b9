package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/mesh/api"
	"github.com/meshcast/meshcast/tests/scenario"
	"github.com/meshcast/meshcast/tests/sitetest"
)

// writeHooks writes a hooks dir whose health hook fails for one version
// (bad) and passes otherwise, and whose activate hook appends the version
// to a log in the release dir's parent.
func writeHooks(t *testing.T, bad string) string {
	t.Helper()
	dir := t.TempDir()
	health := "#!/bin/sh\n[ \"$MESHCAST_RELEASE_VERSION\" != \"" + bad + "\" ] || { echo \"version $MESHCAST_RELEASE_VERSION is broken\" >&2; exit 1; }\n"
	if err := os.WriteFile(filepath.Join(dir, "health"), []byte(health), 0o755); err != nil {
		t.Fatal(err)
	}
	writeActivationLog(t, dir)
	return dir
}

// writeActivationLog adds to a hooks dir a pre-activate hook that logs
// each version a member begins to activate, in activations.log beside its
// releases (activated reads it): nodes install a release as soon as they
// verified it, so what they installed says nothing of what activated.
func writeActivationLog(t *testing.T, dir string) {
	t.Helper()
	hook := "#!/bin/sh\necho \"$MESHCAST_RELEASE_VERSION\" >> \"$(dirname \"$MESHCAST_RELEASE_DIR\")/activations.log\"\n"
	if err := os.WriteFile(filepath.Join(dir, "pre-activate"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
}

// activated reports whether the member with this state dir ever began to
// activate version of release name (writeActivationLog).
func activated(t *testing.T, state, name, version string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "releases", name, "activations.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return slices.Contains(strings.Fields(string(b)), version)
}

// fastPolicy is a rollout with no soak and a threshold of 0: one failure
// fails a wave.
func fastPolicy(waves ...int) content.Rollout {
	return content.Rollout{Waves: waves, HealthTimeout: content.Duration(5 * time.Second)}
}

// releaseDir is where a member installs a version.
func releaseDir(m *sitetest.Member, version string) string {
	return filepath.Join(m.State, "releases", sitetest.Release, version)
}

// TestSiteRollout rolls a good release out to a site in waves and then a
// bad one, whose health hook fails: the bad one stops at its canary, which
// rolls back, and no other member installs it.
func TestSiteRollout(t *testing.T) {
	site := sitetest.New(t, sitetest.Seeders(1), sitetest.Nodes(4), sitetest.Hooks(writeHooks(t, "2.0.0")))
	tree := t.TempDir()
	writeRandomTree(t, tree, 6, 64<<10)
	site.PublishWith("1.0.0", tree, fastPolicy(20, 60, 100))
	site.WaitRunning("1.0.0", time.Minute)
	waitRollout(t, site, "1.0.0", deploy.RolloutDone)
	r := site.Rollout()
	if r == nil || r.State != deploy.RolloutDone || len(r.Waves) != 3 {
		t.Fatalf("rollout of 1.0.0: %+v", r)
	}
	var seen []string
	for i, w := range r.Waves {
		if w.Gate == nil || !w.Gate.Passed || len(w.Members) == 0 || (i > 0 && w.OpenedAt.Before(r.Waves[i-1].Gate.At)) {
			t.Fatalf("wave %d: %+v", i, w)
		}
		seen = append(seen, w.Members...)
	}
	if len(seen) != 5 {
		t.Fatalf("the waves cover %d members, want 5", len(seen))
	}
	for _, m := range site.Members() {
		cur, err := os.Readlink(filepath.Join(m.State, "releases", sitetest.Release, "current"))
		if err != nil || cur != "1.0.0" {
			t.Fatalf("%s: current → %q, %v", m.Name, cur, err)
		}
		if err := scenario.SameTree(tree, releaseDir(m, "1.0.0")); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
	}
	t.Logf("1.0.0: %d waves in %s from the start to done (no soak)", len(r.Waves), r.EndedAt.Sub(r.StartedAt))

	writeRandomTree(t, tree, 6, 64<<10)
	site.PublishWith("2.0.0", tree, fastPolicy(20, 60, 100))
	waitRollout(t, site, "2.0.0", deploy.RolloutRolledBack)
	site.WaitRunning("1.0.0", 30*time.Second)
	r = site.Rollout()
	canary := r.Waves[0].Members
	if r.Wave != 0 || r.Waves[0].Gate == nil || r.Waves[0].Gate.Passed || r.Waves[1].Gate != nil || !r.Waves[1].OpenedAt.IsZero() {
		t.Fatalf("rollout of the bad release: %+v", r)
	}
	// `current` is back on 1.0.0 a moment before the canary's agent counts
	// the rollback: wait for the count.
	site.WaitFor(30*time.Second, "the canary counted its rollback", func(m *sitetest.Member, st api.Status) bool {
		return !slices.Contains(canary, m.Node().ID().String()) || st.Activations["rolled-back"]+st.Activations["site-rollback"] >= 1
	})
	for _, m := range site.Members() {
		inCanary := slices.Contains(canary, m.Node().ID().String())
		if got := activated(t, m.State, sitetest.Release, "2.0.0"); got != inCanary {
			t.Errorf("%s (canary %v) began to activate 2.0.0: %v", m.Name, inCanary, got)
		}
		if !activated(t, m.State, sitetest.Release, "1.0.0") {
			t.Errorf("%s: no activation of 1.0.0 logged", m.Name)
		}
		if st := m.Status(); inCanary && st.Activations["rolled-back"]+st.Activations["site-rollback"] == 0 { // by itself, or told by the site first
			t.Errorf("canary %s: activations %v, want a rollback", m.Name, st.Activations)
		}
	}
	t.Logf("2.0.0 stopped at its canary: %s", r.Reason)
}

// waitRollout waits until every live member sees the site's rollout of
// version in state.
func waitRollout(t *testing.T, site *sitetest.Site, version string, state deploy.RolloutState) {
	t.Helper()
	site.WaitFor(time.Minute, "the site's rollout of "+version+" is "+string(state), func(_ *sitetest.Member, st api.Status) bool {
		v := st.SiteView
		return v != nil && v.Rollout != nil && v.Rollout.Release.Version == version && v.RolloutState == state
	})
}

// TestSitePartitionedMinority splits a seeder and a node from the rest of
// a site while a release rolls out: the majority completes it; the
// minority's seeder cannot commit and the minority's node keeps running
// what it ran; once healed, it catches up.
func TestSitePartitionedMinority(t *testing.T) {
	site := sitetest.New(t, sitetest.Seeders(3), sitetest.Nodes(3))
	site.WaitVoters(3, 30*time.Second)
	tree := t.TempDir()
	writeRandomTree(t, tree, 4, 64<<10)
	site.PublishWith("1.0.0", tree, fastPolicy(50, 100))
	site.WaitRunning("1.0.0", time.Minute)
	waitRollout(t, site, "1.0.0", deploy.RolloutDone)

	leader := site.WaitLeader(nil, 10*time.Second)
	var seeder, node *sitetest.Member
	for _, m := range site.Seeders() {
		if m != leader {
			seeder = m
		}
	}
	node = site.Nodes()[0]
	site.Partition(seeder, node)
	writeRandomTree(t, tree, 4, 64<<10)
	site.PublishWith("2.0.0", tree, fastPolicy(50, 100))
	done := func(st api.Status) bool {
		v := st.SiteView
		return v != nil && v.Rollout != nil && v.Rollout.Release.Version == "2.0.0" && v.RolloutState == deploy.RolloutDone
	}
	waitUntil(t, time.Minute, "the majority to complete 2.0.0", func() bool {
		for _, m := range site.Members() {
			if m == seeder || m == node {
				if m.Status().Running.Version != "1.0.0" {
					t.Fatalf("%s, in the minority, runs %s", m.Name, m.Status().Running)
				}
				continue
			}
			if st := m.Status(); !done(st) || st.Running.Version != "2.0.0" {
				return false
			}
		}
		return true
	})
	if st := seeder.Status(); st.SiteView.Target.Version != "1.0.0" || done(st) {
		t.Fatalf("the minority's seeder has target %s, rollout %v", st.SiteView.Target, st.SiteView.RolloutState)
	}
	if cur, _ := os.Readlink(filepath.Join(releaseDir(node, ""), "current")); cur != "1.0.0" {
		t.Fatalf("the minority's node switched to %q", cur)
	}
	site.Heal()
	site.WaitRunning("2.0.0", time.Minute)
}

// TestSiteAbortDuringSoak aborts a rollout while its canary soaks (a soak
// of two minutes): the canary rolls back at once, not once its soak is
// over, and the site runs the release before.
func TestSiteAbortDuringSoak(t *testing.T) {
	site := sitetest.New(t, sitetest.Seeders(1), sitetest.Nodes(2))
	tree := t.TempDir()
	writeRandomTree(t, tree, 4, 64<<10)
	site.PublishWith("1.0.0", tree, fastPolicy(50, 100))
	site.WaitRunning("1.0.0", time.Minute)
	waitRollout(t, site, "1.0.0", deploy.RolloutDone)

	writeRandomTree(t, tree, 4, 64<<10)
	slow := content.Rollout{Counts: []int{1}, Soak: content.Duration(2 * time.Minute), HealthTimeout: content.Duration(time.Minute)}
	site.PublishWith("2.0.0", tree, slow)
	var canary *sitetest.Member
	waitUntil(t, time.Minute, "the canary to soak 2.0.0", func() bool {
		for _, m := range site.Members() {
			if st := m.Status(); st.Release.Version == "2.0.0" && st.Phase == deploy.PhaseActive {
				canary = m
				return true
			}
		}
		return false
	})
	aborted := time.Now()
	if err := site.Seeders()[0].Node().Rollout(t.Context(), deploy.OpAbort, "test: abort during the soak"); err != nil {
		t.Fatal(err)
	}
	// Well within the two minutes of the soak.
	waitRollout(t, site, "2.0.0", deploy.RolloutAborted)
	site.WaitRunning("1.0.0", 45*time.Second)
	t.Logf("%s, the canary, back on 1.0.0 %s after the abort; activations %v", canary.Name, time.Since(aborted).Round(time.Millisecond), canary.Status().Activations)
	if st := canary.Status(); st.Activations["site-rollback"] != 1 {
		t.Errorf("the canary's activations: %v, want one site rollback", st.Activations)
	}
}
