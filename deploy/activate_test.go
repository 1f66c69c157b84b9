package deploy_test

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshcast/meshcast/deploy"
)

func TestActivateHappyPath(t *testing.T) {
	f := newFixture(t)
	f.recordingHooks()
	a := f.open()
	f.install(a, "1.0.0")
	f.activate(a, "1.0.0")
	f.checkRunning("1.0.0")
	if env := f.hookEnv("activate"); env["MESHCAST_PREVIOUS_VERSION"] != "" || env["MESHCAST_PREVIOUS_DIR"] != "" {
		t.Errorf("first activation: the activate hook saw a previous release: %v", env)
	}
	// Installed after a restart, 2.0.0 still reuses the running release's
	// unchanged files.
	a = f.open()
	f.install(a, "2.0.0")
	f.activate(a, "2.0.0")
	f.checkRunning("2.0.0")
	checkStatus(t, a.Status(), deploy.ActivatorStatus{Running: "2.0.0", Previous: "1.0.0", Phase: deploy.PhaseHealthy})

	for _, hook := range []string{"pre-activate", "activate", "health"} {
		want := map[string]string{
			"MESHCAST_HOOK":             hook,
			"MESHCAST_RELEASE_NAME":     "app",
			"MESHCAST_RELEASE_VERSION":  "2.0.0",
			"MESHCAST_RELEASE_DIR":      filepath.Join(f.dir, "2.0.0"),
			"MESHCAST_PREVIOUS_VERSION": "1.0.0",
			"MESHCAST_PREVIOUS_DIR":     filepath.Join(f.dir, "1.0.0"),
		}
		checkEnv(t, hook, f.hookEnv(hook), want)
	}
	if f.hookEnv("rollback") != nil {
		t.Error("the rollback hook ran")
	}
	if n := f.journalLines(); n != 1 {
		t.Errorf("the journal has %d lines after a commit; want 1 (compacted)", n)
	}
	// The unchanged file is shared with 1.0.0, the changed one is not.
	if !sameInode(t, filepath.Join(f.dir, "1.0.0/share/big"), filepath.Join(f.dir, "2.0.0/share/big")) {
		t.Error("share/big was not hard-linked from the running release")
	}
	if sameInode(t, filepath.Join(f.dir, "1.0.0/bin/app"), filepath.Join(f.dir, "2.0.0/bin/app")) {
		t.Error("bin/app was hard-linked though it changed")
	}
	// It all survives a restart.
	checkStatus(t, f.open().Status(), deploy.ActivatorStatus{Running: "2.0.0", Previous: "1.0.0", Phase: deploy.PhaseHealthy})
}

// checkEnv checks that a hook saw exactly want, and PATH.
func checkEnv(tb testing.TB, hook string, env, want map[string]string) {
	tb.Helper()
	if env == nil {
		tb.Fatalf("hook %s did not run", hook)
	}
	if env["PATH"] == "" {
		tb.Errorf("hook %s: no PATH", hook)
	}
	for k, v := range want {
		if env[k] != v {
			tb.Errorf("hook %s: %s=%q; want %q", hook, k, env[k], v)
		}
	}
	for k := range env {
		if _, ok := want[k]; !ok && k != "PATH" && k != "PWD" { // sh exports PWD
			tb.Errorf("hook %s: unexpected variable %s=%q", hook, k, env[k])
		}
	}
}

func sameInode(tb testing.TB, a, b string) bool {
	tb.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		tb.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		tb.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

// activationError returns err as an *ActivationError, failing the test
// if it is not one.
func activationError(tb testing.TB, err error) *deploy.ActivationError {
	tb.Helper()
	var ae *deploy.ActivationError
	if !errors.As(err, &ae) {
		tb.Fatalf("error %v (%T); want an *ActivationError", err, err)
	}
	return ae
}

func TestActivatePreActivateFails(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0")
	f.activate(a, "1.0.0")
	f.hook("pre-activate", `echo "disk check: /data is read-only" >&2; exit 3`)
	f.hook("activate", "touch "+filepath.Join(f.out, "activated"))

	ae := activationError(t, a.Activate(t.Context(), "2.0.0", quick))
	if ae.Version != "2.0.0" || ae.Step != "pre-activate" || ae.RolledBack {
		t.Errorf("error %+v; want a pre-activate failure of 2.0.0, not rolled back", ae)
	}
	for _, want := range []string{"exit status 3", "/data is read-only"} {
		if !strings.Contains(ae.Error(), want) {
			t.Errorf("error %q does not say %q", ae, want)
		}
	}
	var he *deploy.HookError
	if !errors.As(ae, &he) || he.Status != 3 {
		t.Errorf("error %v: want a HookError with status 3", ae)
	}
	f.checkRunning("1.0.0")
	if _, err := os.Stat(filepath.Join(f.out, "activated")); err == nil {
		t.Error("the activate hook ran")
	}
	st := a.Status()
	checkStatus(t, st, deploy.ActivatorStatus{Running: "1.0.0", Phase: deploy.PhaseFailed})
	if !strings.Contains(st.Err, "read-only") {
		t.Errorf("status error %q does not give the reason", st.Err)
	}
}

func TestActivateHookFailsRollsBack(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0")
	f.activate(a, "1.0.0")
	f.recordingHooks()
	f.hook("activate", "echo service failed to start; exit 1")

	ae := activationError(t, a.Activate(t.Context(), "2.0.0", quick))
	if ae.Step != "activate" || !ae.RolledBack || !strings.Contains(ae.Reason, "service failed to start") {
		t.Errorf("error %+v; want an activate failure, rolled back, with the hook's output", ae)
	}
	f.checkRunning("1.0.0")
	checkStatus(t, a.Status(), deploy.ActivatorStatus{Running: "1.0.0", Previous: "2.0.0", Phase: deploy.PhaseRolledBack})
	checkEnv(t, "rollback", f.hookEnv("rollback"), map[string]string{
		"MESHCAST_HOOK":             "rollback",
		"MESHCAST_RELEASE_NAME":     "app",
		"MESHCAST_RELEASE_VERSION":  "1.0.0",
		"MESHCAST_RELEASE_DIR":      filepath.Join(f.dir, "1.0.0"),
		"MESHCAST_PREVIOUS_VERSION": "2.0.0",
		"MESHCAST_PREVIOUS_DIR":     filepath.Join(f.dir, "2.0.0"),
	})
	if f.hookEnv("health") != nil {
		t.Error("the health hook ran after the activate hook failed")
	}
	// Another attempt at the same version is allowed, and may succeed.
	f.hook("activate", "true")
	f.activate(a, "2.0.0")
	f.checkRunning("2.0.0")
}

func TestActivateUnhealthyRollsBack(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0")
	f.activate(a, "1.0.0")
	f.hook("health", `echo "db: connection refused"; exit 1`)

	ae := activationError(t, a.Activate(t.Context(), "2.0.0", deploy.Policy{HealthTimeout: 20 * time.Millisecond}))
	if ae.Step != "health" || !ae.RolledBack || !errors.Is(ae, deploy.ErrUnhealthy) {
		t.Errorf("error %+v; want a health failure, rolled back", ae)
	}
	for _, want := range []string{"health timeout", "connection refused"} {
		if !strings.Contains(ae.Reason, want) {
			t.Errorf("reason %q does not say %q", ae.Reason, want)
		}
	}
	f.checkRunning("1.0.0")
	st := a.Status()
	checkStatus(t, st, deploy.ActivatorStatus{Running: "1.0.0", Phase: deploy.PhaseRolledBack})
	if !strings.Contains(st.Err, "connection refused") {
		t.Errorf("status error %q does not give the reason", st.Err)
	}
}

// A release that passes its first check and fails a later one inside its
// soak is rolled back.
func TestActivateUnhealthyInSoak(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0")
	f.activate(a, "1.0.0")
	marker := filepath.Join(f.out, "checked")
	f.hook("health", "if [ -e "+marker+" ]; then echo crashed; exit 1; fi; touch "+marker)

	// The soak outlasts the test: only the failed check ends it.
	ae := activationError(t, a.Activate(t.Context(), "2.0.0", deploy.Policy{Soak: time.Hour, HealthTimeout: time.Hour}))
	if ae.Step != "health" || !ae.RolledBack || !strings.Contains(ae.Reason, "after the first healthy") {
		t.Errorf("error %+v; want a health failure after a healthy check, rolled back", ae)
	}
	f.checkRunning("1.0.0")
}

func TestActivateHealthURL(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	f := newFixture(t)
	a := f.open(func(c *deploy.ActivatorConfig) { c.HealthURL = srv.URL + "/healthz" })
	f.install(a, "1.0.0", "2.0.0")
	healthy.Store(true)
	f.activate(a, "1.0.0")
	checkStatus(t, a.Status(), deploy.ActivatorStatus{Running: "1.0.0", Phase: deploy.PhaseHealthy})

	healthy.Store(false)
	ae := activationError(t, a.Activate(t.Context(), "2.0.0", deploy.Policy{HealthTimeout: 20 * time.Millisecond}))
	if ae.Step != "health" || !ae.RolledBack || !strings.Contains(ae.Reason, "503") {
		t.Errorf("error %+v; want a health failure naming the 503, rolled back", ae)
	}
	f.checkRunning("1.0.0")
}

func TestActivateRefusals(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0")
	f.activate(a, "2.0.0")
	for _, c := range []struct {
		version string
		p       deploy.Policy
		want    error
	}{
		{"1.0.0", quick, deploy.ErrBelowRunning},
		{"3.0.0", quick, deploy.ErrNotInstalled},
		{"2.0.0-rc.1", quick, deploy.ErrNotInstalled},
		{"2.0.0.0", quick, nil}, // not a version: any error
	} {
		err := a.Activate(t.Context(), c.version, c.p)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.version) {
			t.Errorf("Activate %s: %v; want %v naming the version", c.version, err, c.want)
		}
	}
	checkStatus(t, a.Status(), deploy.ActivatorStatus{Running: "2.0.0", Phase: deploy.PhaseHealthy})
	f.checkRunning("2.0.0")
	// Activating what runs does nothing.
	f.activate(a, "2.0.0")
	if n := f.journalLines(); n != 1 {
		t.Errorf("the journal has %d lines; want 1", n)
	}
	// The site may go below the running version.
	if err := a.Rollback(t.Context(), "1.0.0", "wave 2 failed"); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	f.checkRunning("1.0.0")
	st := a.Status()
	checkStatus(t, st, deploy.ActivatorStatus{Running: "1.0.0", Previous: "2.0.0", Phase: deploy.PhaseRolledBack})
	if st.Err != "wave 2 failed" {
		t.Errorf("status error %q; want the site's reason", st.Err)
	}
}

func TestSecurityFloor(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0", "3.0.0")
	f.activate(a, "1.0.0")
	// A release below its own floor is refused, and the floor stays.
	err := a.Activate(t.Context(), "2.0.0", deploy.Policy{Floor: "2.5.0"})
	if !errors.Is(err, deploy.ErrBelowFloor) {
		t.Fatalf("Activate 2.0.0 with floor 2.5.0: %v; want ErrBelowFloor", err)
	}
	f.checkRunning("1.0.0")
	if err := a.Activate(t.Context(), "3.0.0", deploy.Policy{HealthTimeout: time.Minute, Floor: "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	// 2.5.0 is the highest floor seen, and survives a restart.
	a = f.open()
	checkStatus(t, a.Status(), deploy.ActivatorStatus{Running: "3.0.0", Phase: deploy.PhaseHealthy, Floor: "2.5.0"})
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if err := a.Rollback(t.Context(), v, "site says"); !errors.Is(err, deploy.ErrBelowFloor) {
			t.Errorf("Rollback to %s: %v; want ErrBelowFloor", v, err)
		}
	}
	f.checkRunning("3.0.0")
}

func TestHookNotExecutable(t *testing.T) {
	for name, setup := range map[string]func(f *fixture) string{
		"mode 0644": func(f *fixture) string {
			p := filepath.Join(f.hooks, "activate")
			writeHook(t, f.hooks, "activate", "true")
			os.Chmod(p, 0o644)
			return "-rw-r--r--"
		},
		"directory": func(f *fixture) string {
			os.Mkdir(filepath.Join(f.hooks, "rollback"), 0o755)
			return "drwxr-xr-x"
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			a := f.open()
			f.install(a, "1.0.0", "2.0.0")
			f.activate(a, "1.0.0")
			mode := setup(f)
			err := a.Activate(t.Context(), "2.0.0", quick)
			if !errors.Is(err, deploy.ErrHookNotExecutable) || !strings.Contains(err.Error(), f.hooks) || !strings.Contains(err.Error(), mode) {
				t.Fatalf("Activate: %v; want ErrHookNotExecutable naming the hook's path and mode %s", err, mode)
			}
			f.checkRunning("1.0.0")
			checkStatus(t, a.Status(), deploy.ActivatorStatus{Running: "1.0.0", Phase: deploy.PhaseHealthy})
		})
	}
}

// A hook that prints megabytes costs MaxOutput of memory and of log, and
// its error quotes the end of what it printed.
func TestHookOutputBounded(t *testing.T) {
	f := newFixture(t)
	var logs syncBuffer
	cfg := f.config()
	cfg.MaxOutput = 4096
	a, err := deploy.OpenActivator(cfg, testLogTo(&logs))
	if err != nil {
		t.Fatal(err)
	}
	f.install(a, "1.0.0", "2.0.0")
	f.activate(a, "1.0.0")
	f.hook("activate", "yes 'all work and no play' | head -c 10485760; echo 'the end' >&2; exit 1")

	ae := activationError(t, a.Activate(t.Context(), "2.0.0", quick))
	if !ae.RolledBack || !strings.Contains(ae.Reason, "the end") || len(ae.Reason) > 2048 {
		t.Errorf("error %.300q…: want a rollback quoting the end of the output, briefly", ae.Reason)
	}
	out := logs.String()
	if want := "…10481672 bytes dropped"; !strings.Contains(out, want) { // 10 MiB + "the end\n" - 4096
		t.Errorf("the log does not say %q", want)
	}
	if len(out) > 64<<10 {
		t.Errorf("%d bytes of log for a hook limited to 4096 bytes of output", len(out))
	}
}

func testLogTo(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The first activation has nothing to return to: its rollback removes
// `current`.
func TestActivateFirstRollsBackToNothing(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0")
	f.recordingHooks()
	f.hook("activate", "exit 1")
	ae := activationError(t, a.Activate(t.Context(), "1.0.0", quick))
	if !ae.RolledBack {
		t.Errorf("error %+v; want rolled back", ae)
	}
	if _, err := os.Lstat(filepath.Join(f.dir, "current")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("current after rolling back the first activation: %v; want none", err)
	}
	checkStatus(t, a.Status(), deploy.ActivatorStatus{Phase: deploy.PhaseRolledBack})
	if env := f.hookEnv("rollback"); env["MESHCAST_RELEASE_VERSION"] != "" || env["MESHCAST_PREVIOUS_VERSION"] != "1.0.0" {
		t.Errorf("the rollback hook saw %v", env)
	}
	checkStatus(t, f.open().Status(), deploy.ActivatorStatus{Phase: deploy.PhaseRolledBack})
}
