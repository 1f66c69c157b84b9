package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// Hooks are how a release's activation reaches what runs the release, in
// the manner of Mender's update modules. This is their contract;
// docs/HOOKS.md says the same for operators, with examples.
//
// A hook is an executable file in the hooks directory
// (ActivatorConfig.Hooks) named for the step it serves:
//
//	pre-activate  before `current` switches to the new release: check that
//	              the node can take it, stop what must not run across the
//	              switch. Failure stops the activation; nothing switched.
//	activate      after the switch: (re)start what runs the release.
//	              Failure rolls the activation back.
//	health        every HealthInterval while the release proves itself:
//	              exit 0 when it is healthy. See Activate.
//	rollback      after `current` switched back to the earlier release
//	              (automatic or decided by the site): (re)start what runs
//	              it. Failure is reported; the rollback stands.
//
// A hook that does not exist is skipped (a missing health hook falls back
// to ActivatorConfig.HealthURL). One that exists but is not a regular
// file, or is not executable, is an error naming its path and mode
// (ErrHookNotExecutable): an activation stops, before its switch if the
// hook is pre-activate.
//
// A hook is executed directly, not through a shell (a script needs its
// #! line), in the directory "/", with stdin from /dev/null, as the
// user meshcast runs as, with exactly this environment:
//
//	MESHCAST_HOOK              the hook's name (pre-activate, …)
//	MESHCAST_RELEASE_NAME      the release's name
//	MESHCAST_RELEASE_VERSION   the version `current` points at when the step is done:
//	                           the new one, or for rollback the one rolled back to
//	MESHCAST_RELEASE_DIR       its directory (absolute)
//	MESHCAST_PREVIOUS_VERSION  the version that ran before the step ("" none): for
//	                           rollback the one being left
//	MESHCAST_PREVIOUS_DIR      its directory ("" none)
//	PATH                       meshcast's own, or a standard one
//
// Exit status 0 is success; anything else is failure, and the error
// quotes the status and the end of the hook's output. A hook runs in a
// process group of its own; when it outlives its time limit
// (ActivatorConfig.HookTimeout, at most 30 s for health) or the
// activation is cancelled, the group gets SIGTERM, and SIGKILL 5 s later
// if anything in it still runs: the error says the hook timed out. A hook
// that exits in time may leave processes behind (a daemon it started):
// they are not signalled, but their output is read for 1 s more and then
// closed, so that one that keeps writing to it gets EPIPE or SIGPIPE. A
// hook starts long-running processes through a service manager, or with
// their output redirected.
//
// Standard output and standard error go to one pipe. The first
// ActivatorConfig.MaxOutput bytes are kept and logged, with the count of
// the bytes dropped after them; the last bytes are kept for the error. A
// hook that prints gigabytes costs no more memory than that.
//
// Hooks must be idempotent: after a crash or a power loss, the activation
// resumes from its last durable step, so a hook may run again for a step
// whose first run it did not finish, or finished without meshcast
// knowing. A node that restarts inside an activation runs its activate
// hook again when the activation resumes, and its rollback hook again if
// a rollback was under way.
const (
	hookPreActivate = "pre-activate"
	hookActivate    = "activate"
	hookHealth      = "health"
	hookRollback    = "rollback"
)

// Hook time limits and defaults.
const (
	// killGrace is how long a timed-out hook's process group has between
	// SIGTERM and SIGKILL.
	killGrace = 5 * time.Second
	// healthHookTimeout bounds a health hook's run.
	healthHookTimeout = 30 * time.Second
	// outputGrace is how long the output of processes a hook left
	// behind is read after it exits.
	outputGrace = time.Second
	// tailBytes of a hook's output are kept for its error.
	tailBytes = 512
	// defaultPath is the PATH of hooks when meshcast has none.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// ErrHookNotExecutable means a hook exists but is not an executable
// regular file; the error names its path and mode.
var ErrHookNotExecutable = errors.New("hook is not an executable regular file")

// HookError is a hook that failed: it exited with a status other than 0,
// was killed by a signal, timed out, or could not start.
type HookError struct {
	Hook     string        // pre-activate, activate, health or rollback
	Path     string        // the executable
	Status   int           // exit status; -1 when killed, timed out or not started
	TimedOut bool          // it outlived its time limit and its group was killed
	Timeout  time.Duration // its time limit
	Tail     string        // the end of its output
	Err      error         // why it did not start or how it ended
}

func (e *HookError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hook %s (%s): ", e.Hook, e.Path)
	switch {
	case e.TimedOut:
		fmt.Fprintf(&b, "timed out after %v (process group terminated)", e.Timeout)
	case e.Status >= 0:
		fmt.Fprintf(&b, "exit status %d", e.Status)
	default:
		b.WriteString(e.Err.Error())
	}
	if e.Tail != "" {
		fmt.Fprintf(&b, "; output ends: %q", e.Tail)
	}
	return b.String()
}

func (e *HookError) Unwrap() error { return e.Err }

// hookEnv is what a hook's environment describes.
type hookEnv struct {
	name        string // release name
	version     string
	dir         string // version's directory
	previous    string
	previousDir string
}

func (e hookEnv) environ(hook string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	return []string{
		"MESHCAST_HOOK=" + hook,
		"MESHCAST_RELEASE_NAME=" + e.name,
		"MESHCAST_RELEASE_VERSION=" + e.version,
		"MESHCAST_RELEASE_DIR=" + e.dir,
		"MESHCAST_PREVIOUS_VERSION=" + e.previous,
		"MESHCAST_PREVIOUS_DIR=" + e.previousDir,
		"PATH=" + path,
	}
}

// hookRunner runs the hooks of one directory.
type hookRunner struct {
	dir       string // "" no hooks
	maxOutput int
	log       *slog.Logger
}

// errNoHook means the hook does not exist, so it is skipped.
var errNoHook = errors.New("no such hook")

// find returns the path of a hook, errNoHook when there is none, or an
// error when it is not an executable regular file.
func (h *hookRunner) find(hook string) (string, error) {
	if h.dir == "" {
		return "", errNoHook
	}
	path := filepath.Join(h.dir, hook)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return "", errNoHook
	}
	fi, err := os.Stat(path) // a symlink to an executable is one
	if err != nil {
		return "", fmt.Errorf("hook %s: %w", hook, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("hook %s: %w: %s has mode %v", hook, ErrHookNotExecutable, path, fi.Mode())
	}
	return path, nil
}

// exists says whether the hook exists, executable or not.
func (h *hookRunner) exists(hook string) bool {
	_, err := h.find(hook)
	return !errors.Is(err, errNoHook)
}

// run runs a hook, if it exists, within timeout; quiet logs a success at
// debug level (the health hook runs every few seconds).
func (h *hookRunner) run(ctx context.Context, hook string, env hookEnv, timeout time.Duration, quiet bool) error {
	path, err := h.find(hook)
	if errors.Is(err, errNoHook) {
		return nil
	}
	if err != nil {
		return err
	}
	start := time.Now()
	out := newOutput(h.maxOutput)
	herr := execHook(ctx, path, env.environ(hook), timeout, out)
	log := h.log.With("hook", hook, "path", path, "version", env.version, "took", time.Since(start).Round(time.Millisecond))
	if out.total > 0 {
		log = log.With("output", out.String())
	}
	if herr != nil {
		herr.Hook, herr.Path, herr.Tail = hook, path, out.tailString()
		log.Warn("hook failed", "err", herr)
		return herr
	}
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelDebug
	}
	log.Log(ctx, level, "hook succeeded")
	return nil
}

// execHook runs the executable at path in a process group of its own,
// its output into out, and returns how it failed, or nil.
func execHook(ctx context.Context, path string, env []string, timeout time.Duration, out *output) *HookError {
	r, w, err := os.Pipe()
	if err != nil {
		return &HookError{Status: -1, Err: err}
	}
	cmd := exec.Command(path)
	cmd.Env, cmd.Dir = env, "/"
	cmd.Stdout, cmd.Stderr = w, w // an *os.File: exec starts no copier, Wait returns when the hook exits
	ownProcessGroup(cmd)
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return &HookError{Status: -1, Err: err}
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		out.readFrom(r)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	herr := waitHook(ctx, cmd, exited, timeout)
	// Processes the hook left behind may hold the pipe open.
	r.SetReadDeadline(time.Now().Add(outputGrace))
	<-read
	r.Close()
	return herr
}

// waitHook waits for the hook to exit, terminating its process group
// when it outlives timeout or ctx.
func waitHook(ctx context.Context, cmd *exec.Cmd, exited <-chan error, timeout time.Duration) *HookError {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-exited:
	case <-timer.C:
		terminateGroup(cmd.Process.Pid, exited)
		return &HookError{Status: -1, TimedOut: true, Timeout: timeout, Err: context.DeadlineExceeded}
	case <-ctx.Done():
		terminateGroup(cmd.Process.Pid, exited)
		return &HookError{Status: -1, Err: fmt.Errorf("stopped: %w", context.Cause(ctx))}
	}
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		return &HookError{Status: exit.ExitCode(), Err: err}
	}
	return &HookError{Status: -1, Err: err}
}

// output keeps the first max bytes of a hook's output and its last
// tailBytes.
type output struct {
	max   int
	head  []byte
	tail  [tailBytes]byte // a ring; total says where it ends
	total int64
}

func newOutput(max int) *output { return &output{max: max} }

func (o *output) readFrom(r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		o.write(buf[:n])
		if err != nil {
			return
		}
	}
}

func (o *output) write(p []byte) {
	if room := o.max - len(o.head); room > 0 {
		o.head = append(o.head, p[:min(room, len(p))]...)
	}
	if len(p) > tailBytes {
		o.total += int64(len(p) - tailBytes)
		p = p[len(p)-tailBytes:]
	}
	for _, c := range p {
		o.tail[o.total%tailBytes] = c
		o.total++
	}
}

// String is the kept head, with the count of the bytes dropped after it.
func (o *output) String() string {
	s := strings.ToValidUTF8(string(o.head), "\uFFFD")
	if dropped := o.total - int64(len(o.head)); dropped > 0 {
		s += fmt.Sprintf("…%d bytes dropped", dropped)
	}
	return s
}

// tailString is the end of the output, trimmed, valid UTF-8.
func (o *output) tailString() string {
	n := int(min(o.total, tailBytes))
	b := make([]byte, 0, n)
	for i := o.total - int64(n); i < o.total; i++ {
		b = append(b, o.tail[i%tailBytes])
	}
	for len(b) > 0 && !utf8.RuneStart(b[0]) { // a character cut by the ring
		b = b[1:]
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	if int64(n) < o.total && s != "" {
		s = "…" + s
	}
	return s
}
