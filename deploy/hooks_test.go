package deploy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeTestHook writes an executable shell script, holding ForkLock so
// that no process a parallel test forks meanwhile inherits it open for
// writing (which fails its exec with ETXTBSY).
func writeTestHook(tb testing.TB, dir, name, body string) {
	tb.Helper()
	syscall.ForkLock.Lock()
	err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755)
	syscall.ForkLock.Unlock()
	if err != nil {
		tb.Fatal(err)
	}
}

// liveWithEnv lists the processes that carry the environment variable kv
// and are not zombies (an exited process stays one when its parent, here
// init, never reaps it, and shows no environment), from /proc,
// independently of the code under test. Every process a hook starts
// inherits its environment.
func liveWithEnv(tb testing.TB, kv string) []string {
	tb.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	var live []string
	for _, e := range entries {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !slices.ContainsFunc(bytes.Split(env, []byte{0}), func(v []byte) bool { return string(v) == kv }) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && !bytes.HasPrefix(bytes.TrimSpace(stat[i+1:]), []byte("Z")) {
			live = append(live, string(stat[:i+1]))
		}
	}
	return live
}

// A hook that outlives its time limit has its whole process group
// terminated: with SIGTERM when that is enough, with SIGKILL when some
// of it ignores SIGTERM, and nothing of it survives. (Where the machine
// is so slow that the hook had not started its children in 100 ms, the
// test proves less, never fails.)
func TestHookTimeoutKillsGroup(t *testing.T) {
	for name, body := range map[string]string{
		"exits on SIGTERM":  "sleep 1000 & sleep 1000",
		"ignores SIGTERM":   "trap '' TERM; sleep 1000 & sleep 1000", // the sleeps inherit the ignored signal
		"leader is a shell": "sh -c 'sleep 1000' & wait",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTestHook(t, dir, "activate", "echo started; "+body)
			marker := dir // unique
			h := &hookRunner{dir: dir, maxOutput: 1024, log: slog.New(slog.NewTextHandler(t.Output(), nil))}
			err := h.run(t.Context(), hookActivate, hookEnv{name: marker, version: "1.0.0"}, 100*time.Millisecond, false)
			var he *HookError
			if !errors.As(err, &he) || !he.TimedOut || !strings.Contains(err.Error(), "timed out after 100ms") {
				t.Fatalf("run: %v; want a timeout", err)
			}
			if he.Tail != "started" {
				t.Logf("the hook had not started in 100 ms (output %q): this run proves little", he.Tail)
			}
			if live := liveWithEnv(t, "MESHCAST_RELEASE_NAME="+marker); len(live) > 0 {
				t.Errorf("processes of the hook survive it: %v", live)
			}
		})
	}
}

func TestHookCancelled(t *testing.T) {
	dir := t.TempDir()
	writeTestHook(t, dir, "pre-activate", "exec sleep 1000")
	h := &hookRunner{dir: dir, maxOutput: 1024, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := h.run(ctx, hookPreActivate, hookEnv{}, time.Minute, false)
	var he *HookError
	if !errors.As(err, &he) || he.TimedOut || !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v; want a HookError for the cancellation", err)
	}
}

func TestHookMissingOrBad(t *testing.T) {
	dir := t.TempDir()
	h := &hookRunner{dir: dir, maxOutput: 1024, log: slog.New(slog.DiscardHandler)}
	if err := h.run(t.Context(), hookActivate, hookEnv{}, time.Minute, false); err != nil {
		t.Errorf("a missing hook: %v; want it skipped", err)
	}
	if err := (&hookRunner{log: h.log}).run(t.Context(), hookActivate, hookEnv{}, time.Minute, false); err != nil {
		t.Errorf("no hooks directory: %v; want the hook skipped", err)
	}
	os.Symlink("nowhere", filepath.Join(dir, "activate"))
	if err := h.run(t.Context(), hookActivate, hookEnv{}, time.Minute, false); err == nil || !strings.Contains(err.Error(), "activate") {
		t.Errorf("a dangling symlink: %v; want an error naming it", err)
	}
	writeTestHook(t, dir, "health", "exit 0")
	os.Chmod(filepath.Join(dir, "health"), 0o600)
	if err := h.run(t.Context(), hookHealth, hookEnv{}, time.Minute, false); !errors.Is(err, ErrHookNotExecutable) ||
		!strings.Contains(err.Error(), "-rw-------") {
		t.Errorf("mode 0600: %v; want ErrHookNotExecutable with the mode", err)
	}
	writeTestHook(t, dir, "rollback", "kill -9 $$")
	err := h.run(t.Context(), hookRollback, hookEnv{}, time.Minute, false)
	var he *HookError
	if !errors.As(err, &he) || he.Status != -1 || !strings.Contains(err.Error(), "killed") {
		t.Errorf("killed by a signal: %v; want a HookError saying so", err)
	}
}

func TestOutputBounds(t *testing.T) {
	o := newOutput(10)
	for i := range 1000 {
		o.write([]byte(strconv.Itoa(i) + "\n"))
	}
	o.write(bytes.Repeat([]byte("x"), 5000))
	o.write([]byte("é the end\n"))
	if o.total != 3890+5000+11 {
		t.Errorf("total %d", o.total)
	}
	if got, want := o.String(), "0\n1\n2\n3\n4\n…8891 bytes dropped"; got != want {
		t.Errorf("String %q; want %q", got, want)
	}
	tail := o.tailString()
	if !strings.HasPrefix(tail, "…xxx") || !strings.HasSuffix(tail, "é the end") || len(tail) > tailBytes+len("…") {
		t.Errorf("tail %q", tail)
	}
	if len(o.head) > 10 {
		t.Errorf("head holds %d bytes", len(o.head))
	}
}
