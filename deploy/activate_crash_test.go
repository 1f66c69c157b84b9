package deploy_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshcast/meshcast/deploy"
)

// The environment of TestActivatorCrashHelper, the child process of the
// crash tests.
const (
	crashDirEnv   = "MESHCAST_TEST_CRASH_DIR"   // the releases directory
	crashHooksEnv = "MESHCAST_TEST_CRASH_HOOKS" // the hooks directory
	crashStepEnv  = "MESHCAST_TEST_CRASH_STEP"  // the journal step at which it kills itself
	crashDoEnv    = "MESHCAST_TEST_CRASH_DO"    // activate (2.0.0), rollback (to 1.0.0) or open
)

// TestActivatorCrashHelper is not a test: TestActivatorCrash runs it in
// a child process, which kills itself with SIGKILL as soon as the
// journal step it is given is durable.
func TestActivatorCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestActivatorCrash")
	}
	step := os.Getenv(crashStepEnv)
	cfg := deploy.ActivatorConfig{Dir: dir, Name: "app", Hooks: os.Getenv(crashHooksEnv), HealthInterval: time.Millisecond,
		CrashHook: func(s string) {
			if s == step {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}}
	a, err := deploy.OpenActivator(cfg, testLog(t))
	if err == nil {
		switch os.Getenv(crashDoEnv) {
		case "activate":
			err = a.Activate(t.Context(), "2.0.0", deploy.Policy{HealthTimeout: time.Minute, Floor: "1.5.0"})
		case "rollback":
			err = a.Rollback(t.Context(), "1.0.0", "the site says")
		}
	}
	t.Fatalf("no step %q came (%v)", step, err)
}

// crashCase is a child that runs do and is killed at step.
type crashCase struct {
	do      string
	hooks   map[string]string // the child's hooks, by name
	setup   []string          // activated before the child runs
	step    string
	running string // what runs once the activator is opened again
	pending bool   // with the activation of 2.0.0 still pending
}

func crashCases() map[string]crashCase {
	fine := map[string]string{"pre-activate": "true", "activate": "true", "health": "true", "rollback": "true"}
	failing := map[string]string{"activate": "exit 1"}
	refused := map[string]string{"pre-activate": "exit 1"}
	cases := make(map[string]crashCase)
	for step, running := range map[string]string{"floor": "1.0.0", "begin": "1.0.0", "pre-activated": "1.0.0",
		"switched": "2.0.0", "activated": "2.0.0", "committed": "2.0.0", "state": "2.0.0"} {
		cases["activate/"+step] = crashCase{do: "activate", hooks: fine, setup: []string{"1.0.0"}, step: step, running: running,
			pending: step == "switched" || step == "activated"}
	}
	for _, step := range []string{"rollback-begin", "rolled-back", "state"} {
		cases["rollback/"+step] = crashCase{do: "rollback", hooks: fine, setup: []string{"1.0.0", "2.0.0"}, step: step, running: "1.0.0"}
	}
	cases["failing-activate/switched"] = crashCase{do: "activate", hooks: failing, setup: []string{"1.0.0"}, step: "switched",
		running: "2.0.0", pending: true}
	for _, step := range []string{"rollback-begin", "rolled-back"} {
		cases["failing-activate/"+step] = crashCase{do: "activate", hooks: failing, setup: []string{"1.0.0"}, step: step, running: "1.0.0"}
	}
	cases["failing-pre-activate/failed"] = crashCase{do: "activate", hooks: refused, setup: []string{"1.0.0"}, step: "failed", running: "1.0.0"}
	return cases
}

// TestActivatorCrash kills a process with SIGKILL right after each
// journal step of Activate and Rollback, then checks that the activator
// opened again finds `current` on the old release or the new one,
// complete, with nothing pending but an activation that had switched,
// and that activating the new release then completes.
func TestActivatorCrash(t *testing.T) {
	for name, c := range crashCases() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			a := f.open()
			f.install(a, "1.0.0", "2.0.0")
			for _, v := range c.setup {
				f.activate(a, v)
			}
			hooks := t.TempDir()
			for h, body := range c.hooks {
				writeHook(t, hooks, h, body)
			}
			crashChild(t, f.dir, hooks, c.do, c.step)
			if floor := f.open().Status().Floor; c.do == "activate" && floor != "1.5.0" {
				t.Errorf("floor %q after the crash; want 1.5.0, recorded first", floor)
			}
			f.checkRecovered(c.running, c.pending)
		})
	}
}

// TestActivatorCrashInRecovery crashes inside an activation, then again
// in the next start as it recovers: as it abandons an activation that
// had not switched, or counts a boot of one that had.
func TestActivatorCrashInRecovery(t *testing.T) {
	for _, c := range []struct {
		first, second string
		running       string
		pending       bool
	}{
		{"begin", "abandoned", "1.0.0", false},
		{"switched", "boot", "2.0.0", true},
	} {
		t.Run(c.second, func(t *testing.T) {
			f := newFixture(t)
			a := f.open()
			f.install(a, "1.0.0", "2.0.0")
			f.activate(a, "1.0.0")
			crashChild(t, f.dir, "", "activate", c.first)
			crashChild(t, f.dir, "", "open", c.second)
			f.checkRecovered(c.running, c.pending)
		})
	}
}

// TestActivatorCrashInSwitch crashes between the switch and its journal
// record: the next start finds `current` on the new release and counts
// the activation as switched.
func TestActivatorCrashInSwitch(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0")
	f.activate(a, "1.0.0")
	crashChild(t, f.dir, "", "activate", "pre-activated")
	if err := os.Symlink("2.0.0", filepath.Join(f.dir, "current.tmp-x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(f.dir, "current.tmp-x"), filepath.Join(f.dir, "current")); err != nil {
		t.Fatal(err)
	}
	st := f.open().Status()
	checkStatus(t, st, deploy.ActivatorStatus{Running: "2.0.0", Previous: "1.0.0", Pending: "2.0.0", Phase: deploy.PhaseActive})
	if st.Step != "switched" {
		t.Errorf("step %q; want switched", st.Step)
	}
	f.checkRecovered("2.0.0", true)
}

// checkRecovered opens the activator again and checks that running runs,
// complete, pending or not, that nothing is left of the interrupted
// operation, and that 2.0.0 then activates.
func (f *fixture) checkRecovered(running string, pending bool) {
	t := f.t
	a := f.open()
	f.checkRunning(running)
	st := a.Status()
	if pending != (st.Pending == "2.0.0") || (!pending && st.Pending != "") {
		t.Fatalf("status %+v; want pending %v", st, pending)
	}
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") || strings.Contains(e.Name(), ".partial-") {
			t.Errorf("leftover %s", e.Name())
		}
	}
	if err := a.Activate(t.Context(), "2.0.0", quick); err != nil {
		t.Fatalf("Activate 2.0.0 after the crash: %v", err)
	}
	f.checkRunning("2.0.0")
	checkStatus(t, a.Status(), deploy.ActivatorStatus{Running: "2.0.0", Phase: deploy.PhaseHealthy})
}

// crashChild runs TestActivatorCrashHelper and checks that it killed
// itself.
func crashChild(t *testing.T, dir, hooks, do, step string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestActivatorCrashHelper$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashHooksEnv+"="+hooks, crashStepEnv+"="+step, crashDoEnv+"="+do)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed at %s: %v\n%s", step, err, out)
	}
}

func TestBootCommit(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0")
	f.activate(a, "1.0.0")
	// An activation left inside its soak, as by a restart: the context
	// ends once the activate hook ran, while the health hook fails.
	f.hook("health", "exit 1")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a = f.open(func(c *deploy.ActivatorConfig) {
		c.CrashHook = func(step string) {
			if step == "activated" {
				cancel()
			}
		}
	})
	if err := a.Activate(ctx, "2.0.0", deploy.Policy{HealthTimeout: time.Hour}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Activate: %v; want it interrupted", err)
	}
	pending := deploy.ActivatorStatus{Running: "2.0.0", Previous: "1.0.0", Pending: "2.0.0", Phase: deploy.PhaseActive}
	checkStatus(t, a.Status(), pending)
	f.recordingHooks()
	for range deploy.DefaultMaxBoots {
		checkStatus(t, f.open().Status(), pending)
	}
	st := f.open().Status()
	checkStatus(t, st, deploy.ActivatorStatus{Running: "1.0.0", Previous: "2.0.0", Phase: deploy.PhaseRolledBack})
	if want := "restarted 4 times inside its soak without reporting healthy"; !strings.Contains(st.Err, want) {
		t.Errorf("status error %q; want %q", st.Err, want)
	}
	f.checkRunning("1.0.0")
	if env := f.hookEnv("rollback"); env["MESHCAST_RELEASE_VERSION"] != "1.0.0" {
		t.Errorf("the rollback hook saw %v; want it to run for 1.0.0", env)
	}
}
