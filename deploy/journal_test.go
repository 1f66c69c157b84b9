package deploy

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const journalGolden = "testdata/journal-v1.golden"

// updating says whether go test ran with -update, which
// activate_helpers_test.go registers (see there).
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// goldenRecords are one record of every step, in an order a node writes
// them: a compacted journal, a floor, a committed activation (with a
// restart inside it), a failed one, an abandoned one, a rolled back one.
func goldenRecords() []record {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	reason := "health failed: release not healthy: no check passed within the health timeout of 5m0s"
	return []record{
		{Step: stepState, Time: at, Version: "1.0.0", From: "0.9.0", Floor: "0.9.0", Phase: PhaseHealthy, Last: "1.0.0"},
		{Step: stepFloor, Time: at, Floor: "1.0.0"},
		{Step: stepBegin, Time: at, Version: "2.0.0", From: "1.0.0"},
		{Step: stepPreActivated, Time: at, Version: "2.0.0"},
		{Step: stepSwitched, Time: at, Version: "2.0.0"},
		{Step: stepBoot, Time: at, Version: "2.0.0", Boots: 1},
		{Step: stepActivated, Time: at, Version: "2.0.0"},
		{Step: stepCommitted, Time: at, Version: "2.0.0", From: "1.0.0"},
		{Step: stepBegin, Time: at, Version: "3.0.0-rc.1", From: "2.0.0"},
		{Step: stepFailed, Time: at, Version: "3.0.0-rc.1", Reason: `pre-activate failed: hook pre-activate (/etc/meshcast/hooks/pre-activate): exit status 3; output ends: "disk full"`},
		{Step: stepBegin, Time: at, Version: "3.0.0", From: "2.0.0"},
		{Step: stepAbandoned, Time: at, Version: "3.0.0", Reason: "the node restarted before the switch"},
		{Step: stepBegin, Time: at, Version: "3.0.0", From: "2.0.0"},
		{Step: stepPreActivated, Time: at, Version: "3.0.0"},
		{Step: stepSwitched, Time: at, Version: "3.0.0"},
		{Step: stepRollbackBegin, Time: at, Version: "2.0.0", From: "3.0.0", Reason: reason},
		{Step: stepRolledBack, Time: at, Version: "2.0.0", From: "3.0.0", Reason: reason},
	}
}

// TestJournalGolden pins the encoding of version 1 records: a change
// that fails it strands every node's journal, and needs a new version
// that this one can still read.
func TestJournalGolden(t *testing.T) {
	var got []byte
	steps := make(map[string]bool)
	for _, r := range goldenRecords() {
		line, err := r.encode()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line...)
		steps[r.Step] = true
	}
	for _, s := range []string{stepBegin, stepPreActivated, stepSwitched, stepActivated, stepCommitted, stepFailed, stepAbandoned,
		stepRollbackBegin, stepRolledBack, stepBoot, stepFloor, stepState} {
		if !steps[s] {
			t.Errorf("the golden records lack a %s record", s)
		}
	}
	if updating() {
		if err := os.WriteFile(journalGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(journalGolden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the encoding of journal records changed; journals on disk would no longer read.\ngot:\n%s\nwant (%s):\n%s",
			got, journalGolden, want)
	}
	// What is on disk reads, and replays to where it ends.
	recs, good, err := decodeJournal(want)
	if err != nil || good != len(want) || len(recs) != len(goldenRecords()) {
		t.Fatalf("decode %s: %d records, %d of %d bytes, %v", journalGolden, len(recs), good, len(want), err)
	}
	st, err := replay(recs)
	if err != nil {
		t.Fatal(err)
	}
	if st.Running != "2.0.0" || st.Previous != "3.0.0" || st.Floor != "1.0.0" || st.Phase != PhaseRolledBack ||
		!strings.HasPrefix(st.Err, "health failed") || st.Pending != nil {
		t.Errorf("replayed golden journal: %+v", st)
	}
}

func TestJournalTornTail(t *testing.T) {
	var whole []byte
	for _, r := range goldenRecords()[:4] {
		line, _ := r.encode()
		whole = append(whole, line...)
	}
	last, _ := goldenRecords()[4].encode()
	for name, tail := range map[string][]byte{
		"half a line":            last[:len(last)/2],
		"a line without its \\n": last[:len(last)-1],
		"zeros":                  bytes.Repeat([]byte{0}, 100),
		"zeros and a newline":    append(bytes.Repeat([]byte{0}, 10), '\n'),
		"nothing":                nil,
	} {
		b := append(append([]byte(nil), whole...), tail...)
		const wantRecs = 4
		recs, good, err := decodeJournal(b)
		if err != nil || len(recs) != wantRecs {
			t.Errorf("%s: %d records, %v; want %d", name, len(recs), err, wantRecs)
			continue
		}
		if good != len(whole) {
			t.Errorf("%s: %d good bytes; want %d", name, good, len(whole))
		}
		// read cuts the torn tail off, so that the next append starts a
		// line of its own.
		j := &journal{path: filepath.Join(t.TempDir(), "journal")}
		os.WriteFile(j.path, b, 0o644)
		if _, err := j.read(); err != nil {
			t.Fatal(err)
		}
		if err := j.append(record{Step: stepActivated, Version: "2.0.0"}); err != nil {
			t.Fatal(err)
		}
		if recs, err := j.read(); err != nil || len(recs) != wantRecs+1 {
			t.Errorf("%s: after an append: %d records, %v; want %d", name, len(recs), err, wantRecs+1)
		}
	}
}

func TestJournalBad(t *testing.T) {
	good, _ := goldenRecords()[0].encode()
	for name, c := range map[string]struct {
		b    string
		want string
	}{
		"garbage inside":  {"{\"v\":1,\"step\":\"floor\",\"floor\":\"1.0.0\"}\nnot json\n" + string(good), "line 2"},
		"newer version":   {"{\"v\":2,\"step\":\"floor\"}\n" + string(good), "record version 2"},
		"unknown step":    {"{\"v\":1,\"step\":\"teleported\"}\n" + string(good), `unknown step "teleported"`},
		"out of sequence": {"{\"v\":1,\"step\":\"switched\",\"version\":\"1.0.0\"}\n", "no activation of 1.0.0 is pending"},
		"bad floor":       {"{\"v\":1,\"step\":\"floor\",\"floor\":\"one\"}\n", "not a semantic version"},
	} {
		recs, _, err := decodeJournal([]byte(c.b))
		if err == nil {
			_, err = replay(recs)
		}
		if !errors.Is(err, ErrJournal) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want ErrJournal saying %q", name, err, c.want)
		}
	}
}
