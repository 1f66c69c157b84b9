package content_test

import (
	"errors"
	"testing"

	"github.com/meshcast/meshcast/content"
)

func TestParseRelease(t *testing.T) {
	for _, c := range []struct {
		in   string
		want content.Release
	}{
		{"gateway-os@1.2.3", content.Release{Name: "gateway-os", Version: "1.2.3"}},
		{"gateway-os", content.Release{Name: "gateway-os"}},
		{"gw@2.0.0-rc.1", content.Release{Name: "gw", Version: "2.0.0-rc.1"}},
	} {
		got, err := content.ParseRelease(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseRelease(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if got.String() != c.in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), c.in)
		}
	}
	for _, bad := range []string{"", "Gateway@1.0.0", "gw@v1.0.0", "gw@1.0", "gw@", "@1.0.0"} {
		if r, err := content.ParseRelease(bad); !errors.Is(err, content.ErrBadManifest) {
			t.Errorf("ParseRelease(%q) = %+v, %v; want an error wrapping ErrBadManifest", bad, r, err)
		}
	}
	if s := (content.Release{}).String(); s != "none" {
		t.Errorf("the zero Release prints %q, want none", s)
	}
}

// Matches compares ids only where both sides know one: a release learnt
// from gossip (no id) matches the signed one.
func TestReleaseMatches(t *testing.T) {
	signed := content.Release{Name: "gw", Version: "1.0.0", ID: content.ReleaseID{1}}
	for _, c := range []struct {
		other content.Release
		want  bool
	}{
		{signed, true},
		{signed.WithoutID(), true},
		{content.Release{Name: "gw", Version: "1.0.0", ID: content.ReleaseID{2}}, false},
		{content.Release{Name: "gw", Version: "1.0.1"}, false},
		{content.Release{Name: "other", Version: "1.0.0"}, false},
	} {
		if got := signed.Matches(c.other); got != c.want || c.other.Matches(signed) != c.want {
			t.Errorf("%+v matches %+v: %v, want %v (both ways)", signed, c.other, got, c.want)
		}
	}
	if signed.WithoutID().ID != (content.ReleaseID{}) || signed.ID == (content.ReleaseID{}) {
		t.Error("WithoutID changed its receiver or kept the id")
	}
}
