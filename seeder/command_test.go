package seeder_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/seeder"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// relID is a release id for tests: the sha256 of a made-up manifest.
func relID(name, version string) content.ReleaseID {
	return content.ReleaseID(sha256.Sum256([]byte(name + " " + version)))
}

func stage(name, version string, term uint64) seeder.StageRelease {
	return seeder.StageRelease{Release: content.Release{Name: name, Version: version, ID: relID(name, version)}, Term: term}
}

func mustEncode(t testing.TB, kind seeder.CommandKind, body any) []byte {
	t.Helper()
	b, err := seeder.EncodeCommand(kind, body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed: the Raft log of every site holds this encoding; "+
			"a change needs a new format version or kind\ngot  %q\nwant %q", p, got, want)
	}
}

// TestStageReleaseGolden pins the wire form of a stage-release command:
// entries written by one seeder version are read by the next.
func TestStageReleaseGolden(t *testing.T) {
	b := mustEncode(t, seeder.CmdStageRelease, stage("gateway-fw", "1.2.0", 7))
	golden(t, "stage_release.cmd", b)
	if b[0] != 1 || b[1] != byte(seeder.CmdStageRelease) {
		t.Errorf("header % x, want 01 01", b[:2])
	}

	// The golden bytes decode to the same command.
	kind, body, err := seeder.DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if kind != seeder.CmdStageRelease || body != stage("gateway-fw", "1.2.0", 7) {
		t.Errorf("decoded %v %#v", kind, body)
	}
	// A pointer body encodes alike.
	s := stage("gateway-fw", "1.2.0", 7)
	if p := mustEncode(t, seeder.CmdStageRelease, &s); !bytes.Equal(p, b) {
		t.Errorf("pointer body encodes as %q", p)
	}
}

func TestEncodeCommandRefuses(t *testing.T) {
	long := strings.Repeat("a", 300)
	for _, tc := range []struct {
		name string
		kind seeder.CommandKind
		body any
		want string
	}{
		{"unknown kind", 9, stage("a", "1.0.0", 1), "unknown kind 9"},
		{"wrong body type", seeder.CmdStageRelease, "x", "body is a string"},
		{"nil pointer", seeder.CmdStageRelease, (*seeder.StageRelease)(nil), "nil body"},
		{"bad name", seeder.CmdStageRelease, stage("Gateway", "1.0.0", 1), `release name "Gateway"`},
		{"bad version", seeder.CmdStageRelease, stage("gw", "v1.0", 1), `version "v1.0"`},
		{"zero id", seeder.CmdStageRelease, seeder.StageRelease{Release: content.Release{Name: "gw", Version: "1.0.0"}, Term: 1}, "release id is all zeroes"},
		{"zero term", seeder.CmdStageRelease, stage("gw", "1.0.0", 0), "term is 0"},
		{"long version", seeder.CmdStageRelease, stage("gw", "1.0.0-"+long, 1), "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := seeder.EncodeCommand(tc.kind, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// badCommands are command bytes DecodeCommand must refuse, each with what
// its error must say. They also seed the fuzzer.
func badCommands(t testing.TB) []struct {
	name string
	b    []byte
	want string
} {
	good := mustEncode(t, seeder.CmdStageRelease, stage("gateway-fw", "1.2.0", 7))
	body := string(good[2:])
	hdr := "\x01\x01"
	return []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"format 0", []byte("\x00\x01{}"), "format version 0"},
		{"format 2", append([]byte{2}, good[1:]...), "format version 2"},
		{"no kind", []byte{1}, "no kind byte"},
		{"unknown kind", append([]byte{1, 200}, good[2:]...), "unknown kind 200"},
		{"kind 0", []byte("\x01\x00{}"), "unknown kind 0"},
		{"no body", []byte(hdr), "not a JSON object"},
		{"null body", []byte(hdr + "null"), "not a JSON object"},
		{"array body", []byte(hdr + "[]"), "not a JSON object"},
		{"truncated body", []byte(hdr + body[:len(body)-3]), "body"},
		{"trailing data", []byte(hdr + body + "{}"), "trailing data"},
		{"unknown field", []byte(hdr + strings.Replace(body, `{`, `{"extra":1,`, 1)), `unknown field "extra"`},
		{"empty object", []byte(hdr + "{}"), "release name"},
		{"bad id", []byte(hdr + `{"name":"gw","version":"1.0.0","id":"zz","term":1}`), "sha256"},
		{"negative term", []byte(hdr + `{"name":"gw","version":"1.0.0","id":"` + relID("gw", "1.0.0").String() + `","term":-1}`), "term"},
		{"zero term", []byte(hdr + `{"name":"gw","version":"1.0.0","id":"` + relID("gw", "1.0.0").String() + `","term":0}`), "term is 0"},
		{"bad version", []byte(hdr + `{"name":"gw","version":"1","id":"` + relID("gw", "1").String() + `","term":1}`), `version "1"`},
		{"too big", append([]byte(hdr), make([]byte, seeder.MaxCommandSize)...), "exceed the limit"},
	}
}

func TestDecodeCommandBadInput(t *testing.T) {
	for _, tc := range badCommands(t) {
		t.Run(tc.name, func(t *testing.T) {
			kind, body, err := seeder.DecodeCommand(tc.b)
			if err == nil {
				t.Fatalf("decoded %v %#v", kind, body)
			}
			if !errors.Is(err, seeder.ErrBadCommand) {
				t.Errorf("%v does not wrap ErrBadCommand", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: want it to say %q", err, tc.want)
			}
			if body != nil {
				t.Errorf("body %#v with an error", body)
			}
		})
	}
}

// FuzzDecodeCommand: any bytes either decode to a command that encodes back
// to a command that decodes the same, or give an error wrapping
// ErrBadCommand; nothing panics. The FSM applies whatever the fuzzer makes
// without panicking, and refuses what does not decode.
func FuzzDecodeCommand(f *testing.F) {
	f.Add(mustEncode(f, seeder.CmdStageRelease, stage("gateway-fw", "1.2.0", 7)))
	f.Add(mustEncode(f, seeder.CmdStageRelease, stage("gateway-fw", "1.2.0-rc.1+build.5", 1)))
	for _, tc := range badCommands(f) {
		if len(tc.b) < 1024 {
			f.Add(tc.b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, body, err := seeder.DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, seeder.ErrBadCommand) {
				t.Fatalf("%v does not wrap ErrBadCommand", err)
			}
		} else {
			again, err := seeder.EncodeCommand(kind, body)
			if err != nil {
				t.Fatalf("decoded %v %#v does not encode: %v", kind, body, err)
			}
			k2, b2, err := seeder.DecodeCommand(again)
			if err != nil || k2 != kind || b2 != body {
				t.Fatalf("round trip: %v %#v, %v; want %v %#v", k2, b2, err, kind, body)
			}
		}

		// Applied in the term the command claims (or 1), on an empty FSM and
		// on one with a target.
		term := uint64(1)
		if s, ok := body.(seeder.StageRelease); ok {
			term = s.Term
		}
		for _, f := range []*seeder.FSM{seeder.NewFSM(), withTarget(t, stage("gateway-fw", "1.2.0", 1))} {
			before := f.State()
			resp := f.Apply(&raft.Log{Index: 100, Term: term, Type: raft.LogCommand, Data: b})
			if err != nil {
				if rerr, ok := resp.(error); !ok || !errors.Is(rerr, seeder.ErrBadCommand) {
					t.Fatalf("Apply of undecodable bytes responded %v", resp)
				}
				if after := f.State(); !targetEqual(after.Target, before.Target) || after.Index != 100 {
					t.Fatalf("undecodable command changed the state to %+v", after)
				}
			}
		}
	})
}
