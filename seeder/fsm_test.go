package seeder_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/seeder"
)

// entry is a log entry of a command in a term.
func entry(index, term uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: data}
}

// withTarget returns an FSM whose target is s, staged at index 1.
func withTarget(t testing.TB, s seeder.StageRelease) *seeder.FSM {
	t.Helper()
	f := seeder.NewFSM()
	if resp := f.Apply(entry(1, s.Term, mustEncode(t, seeder.CmdStageRelease, s))); resp != (seeder.ApplyResult{Index: 1, Changed: true}) {
		t.Fatalf("stage %v: %v", s, resp)
	}
	return f
}

func targetEqual(a, b *seeder.Target) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func TestFSMStageRules(t *testing.T) {
	f := seeder.NewFSM()
	if st := f.State(); st.Target != nil || st.Index != 0 {
		t.Fatalf("new FSM state %+v", st)
	}
	type step struct {
		name    string
		term    uint64 // the entry's term
		cmd     seeder.StageRelease
		changed bool   // when accepted
		refused string // else: what the error says (it wraps ErrRefused)
		target  string // the target's version afterwards
	}
	steps := []step{
		{name: "first", term: 2, cmd: stage("gw", "1.0.0", 2), changed: true, target: "1.0.0"},
		{name: "same id again", term: 2, cmd: stage("gw", "1.0.0", 2), target: "1.0.0"},
		{name: "same id, later term", term: 3, cmd: stage("gw", "1.0.0", 3), target: "1.0.0"},
		{name: "higher", term: 3, cmd: stage("gw", "1.1.0", 3), changed: true, target: "1.1.0"},
		{name: "lower", term: 3, cmd: stage("gw", "1.0.5", 3), refused: "below the target 1.1.0", target: "1.1.0"},
		{name: "prerelease is lower", term: 3, cmd: stage("gw", "1.1.0-rc.1", 3), refused: "below the target", target: "1.1.0"},
		{name: "same version, other id", term: 3,
			cmd:     seeder.StageRelease{Release: content.Release{Name: "gw", Version: "1.1.0", ID: relID("gw", "other")}, Term: 3},
			refused: "staged already", target: "1.1.0"},
		{name: "same id, other version", term: 3,
			cmd:     seeder.StageRelease{Release: content.Release{Name: "gw", Version: "9.0.0", ID: relID("gw", "1.1.0")}, Term: 3},
			refused: "release id is the target's", target: "1.1.0"},
		{name: "other name", term: 3, cmd: stage("other", "2.0.0", 3), refused: "the site's release is gw", target: "1.1.0"},
		{name: "stale term", term: 5, cmd: stage("gw", "2.0.0", 4), refused: "decided in term 4 but appended in term 5", target: "1.1.0"},
		{name: "term from the future", term: 5, cmd: stage("gw", "2.0.0", 6), refused: "decided in term 6", target: "1.1.0"},
		{name: "numeric, not lexical", term: 5, cmd: stage("gw", "1.10.0", 5), changed: true, target: "1.10.0"},
	}
	for i, s := range steps {
		index := uint64(i + 1)
		resp := f.Apply(entry(index, s.term, mustEncode(t, seeder.CmdStageRelease, s.cmd)))
		if s.refused == "" {
			if want := (seeder.ApplyResult{Index: index, Changed: s.changed}); resp != want {
				t.Errorf("%s: response %v, want %v", s.name, resp, want)
			}
		} else {
			err, _ := resp.(error)
			if !errors.Is(err, seeder.ErrRefused) || !strings.Contains(fmt.Sprint(err), s.refused) {
				t.Errorf("%s: response %v, want a refusal saying %q", s.name, resp, s.refused)
			}
		}
		st := f.State()
		if st.Index != index {
			t.Errorf("%s: index %d, want %d", s.name, st.Index, index)
		}
		if st.Target == nil || st.Target.Version != s.target {
			t.Errorf("%s: target %+v, want version %s", s.name, st.Target, s.target)
		}
	}
	want := seeder.Target{Release: content.Release{Name: "gw", Version: "1.10.0", ID: relID("gw", "1.10.0")}, StagedAt: uint64(len(steps)), Term: 5}
	if got := f.State().Target; *got != want {
		t.Errorf("final target %+v, want %+v", *got, want)
	}
}

func TestFSMStateIsACopy(t *testing.T) {
	f := withTarget(t, stage("gw", "1.0.0", 1))
	st := f.State()
	st.Target.Version = "9.9.9"
	if got := f.State().Target.Version; got != "1.0.0" {
		t.Errorf("changing a State copy changed the FSM: %s", got)
	}
}

// mixedLog is a log of good, refused and undecodable commands over three
// terms.
func mixedLog(t testing.TB) []*raft.Log {
	var log []*raft.Log
	add := func(term uint64, data []byte) {
		log = append(log, entry(uint64(len(log)+1), term, data))
	}
	add(2, mustEncode(t, seeder.CmdStageRelease, stage("gw", "1.0.0", 2)))
	add(2, []byte("garbage"))
	add(2, mustEncode(t, seeder.CmdStageRelease, stage("gw", "0.9.0", 2)))
	add(3, mustEncode(t, seeder.CmdStageRelease, stage("gw", "1.1.0", 2)))
	add(3, mustEncode(t, seeder.CmdStageRelease, stage("gw", "1.1.0", 3)))
	add(3, nil)
	add(4, mustEncode(t, seeder.CmdStageRelease, stage("gw", "1.1.0", 4)))
	add(4, mustEncode(t, seeder.CmdStageRelease, stage("gw", "2.0.0", 4)))
	add(4, []byte{1, 1, '{'})
	return log
}

// TestFSMDeterministic applies one log to two FSMs: the same responses and
// the same state, whatever the commands.
func TestFSMDeterministic(t *testing.T) {
	log := mixedLog(t)
	a, b := seeder.NewFSM(), seeder.NewFSM()
	var ra, rb []string
	for _, l := range log {
		ra = append(ra, fmt.Sprint(a.Apply(l)))
	}
	for _, l := range log {
		// A copy: Apply must not depend on the entry's identity.
		c := *l
		c.Data = bytes.Clone(l.Data)
		c.AppendedAt = time.Now() // not part of the decision
		rb = append(rb, fmt.Sprint(b.Apply(&c)))
	}
	for i := range ra {
		if ra[i] != rb[i] {
			t.Errorf("entry %d: responses differ: %s vs %s", i+1, ra[i], rb[i])
		}
		t.Logf("entry %d: %s", i+1, ra[i])
	}
	sa, sb := a.State(), b.State()
	if sa.Index != sb.Index || !targetEqual(sa.Target, sb.Target) {
		t.Errorf("states differ: %+v %+v vs %+v %+v", sa, sa.Target, sb, sb.Target)
	}
	if sa.Index != uint64(len(log)) || sa.Target == nil || sa.Target.Version != "2.0.0" || sa.Target.StagedAt != 8 {
		t.Errorf("state %+v %+v, want 2.0.0 staged at 8, index %d", sa, sa.Target, len(log))
	}
}

// persist takes a snapshot of f and returns its bytes.
func persist(t testing.TB, f *seeder.FSM) []byte {
	t.Helper()
	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(raft.SnapshotVersionMax, f.State().Index, 1, raft.Configuration{}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFSMSnapshotRestore(t *testing.T) {
	f := seeder.NewFSM()
	for _, l := range mixedLog(t) {
		f.Apply(l)
	}
	b := persist(t, f)
	golden(t, "snapshot_v2.json", b)

	g := seeder.NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Changes():
	default:
		t.Error("Restore did not signal a change")
	}
	fs, gs := f.State(), g.State()
	if fs.Index != gs.Index || !targetEqual(fs.Target, gs.Target) {
		t.Errorf("restored %+v %+v, want %+v %+v", gs, gs.Target, fs, fs.Target)
	}
	// The restored FSM goes on like the original.
	next := entry(fs.Index+1, 5, mustEncode(t, seeder.CmdStageRelease, stage("gw", "2.1.0", 5)))
	if ra, rg := f.Apply(next), g.Apply(next); ra != rg {
		t.Errorf("after restore: %v vs %v", rg, ra)
	}

	// An empty FSM round-trips too.
	e := seeder.NewFSM()
	if err := e.Restore(io.NopCloser(bytes.NewReader(persist(t, seeder.NewFSM())))); err != nil {
		t.Fatal(err)
	}
	if st := e.State(); st.Target != nil || st.Index != 0 {
		t.Errorf("empty round trip: %+v", st)
	}
}

func TestFSMRestoreBadSnapshot(t *testing.T) {
	good := persist(t, withTarget(t, stage("gw", "1.0.0", 1)))
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var c map[string]any
		_ = json.Unmarshal(good, &c)
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	target := func(m map[string]any) map[string]any { return m["target"].(map[string]any) }
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "decode snapshot"},
		{"not json", []byte("raft"), "decode snapshot"},
		{"trailing", append(bytes.Clone(good), "{}"...), "trailing data"},
		{"format 3", edit(func(m map[string]any) { m["format"] = 3 }), "snapshot format 3"},
		{"format 1 with a running release", edit(func(m map[string]any) {
			m["format"] = 1
			m["running"] = map[string]any{"name": "gw", "version": "0.9.0"}
		}), "format 1 snapshot has no rollout"},
		{"no format", edit(func(m map[string]any) { delete(m, "format") }), "snapshot format 0"},
		{"unknown field", edit(func(m map[string]any) { m["admitted"] = []string{} }), `unknown field "admitted"`},
		{"bad version", edit(func(m map[string]any) { target(m)["version"] = "one" }), `version "one"`},
		{"staged after the index", edit(func(m map[string]any) { target(m)["staged_at"] = 99 }), "staged at index 99"},
		{"too big", bytes.Repeat([]byte(" "), 64<<20+1), "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := withTarget(t, stage("gw", "3.0.0", 1))
			before := f.State()
			err := f.Restore(io.NopCloser(bytes.NewReader(tc.b)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if after := f.State(); after.Index != before.Index || !targetEqual(after.Target, before.Target) {
				t.Errorf("a failed restore changed the state to %+v", after)
			}
		})
	}
}

func TestFSMChangesCollapse(t *testing.T) {
	f := seeder.NewFSM()
	for i := range 3 {
		f.Apply(entry(uint64(i+1), 1, []byte("x")))
	}
	select {
	case <-f.Changes():
	default:
		t.Fatal("no change signalled")
	}
	select {
	case <-f.Changes():
		t.Fatal("three changes signalled twice; want one collapsed signal")
	default:
	}
	if got := f.State().Index; got != 3 {
		t.Errorf("index %d, want 3", got)
	}
}
