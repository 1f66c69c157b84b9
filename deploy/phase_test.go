package deploy

import (
	"strings"
	"testing"
)

func TestPhaseNames(t *testing.T) {
	want := []string{"idle", "fetching", "verified", "activating", "active", "healthy", "failed", "rolled-back"}
	for i, name := range want {
		p := Phase(i)
		if p.String() != name {
			t.Errorf("Phase(%d) = %q; want %q", i, p, name)
		}
		got, err := ParsePhase(name)
		if err != nil || got != p {
			t.Errorf("ParsePhase(%q) = %v, %v", name, got, err)
		}
		var q Phase
		if err := q.UnmarshalText([]byte(name)); err != nil || q != p {
			t.Errorf("UnmarshalText(%q) = %v, %v", name, q, err)
		}
	}
	if _, err := ParsePhase("done"); err == nil || !strings.Contains(err.Error(), "rolled-back") {
		t.Errorf("ParsePhase(done): %v; want an error listing the phases", err)
	}
	if s := Phase(8).String(); s != "phase(8)" {
		t.Errorf("Phase(8) = %q", s)
	}
	if _, err := Phase(8).MarshalText(); err == nil {
		t.Error("Phase(8).MarshalText succeeded")
	}
}
