package content

import "strings"

// Release names one release of a fleet: the name and the semantic version
// that its manifest carries and, where the holder knows it, the id of that
// signed manifest. It is the one release identity of the project: the
// signed metadata lists Releases, the site's Raft stages one, gossip
// carries a member's running and staged ones (by name and version only),
// and the status API shows them.
//
// The zero Release names none. A Release without a version (ParseRelease
// of "name") means the highest signed version of that name.
type Release struct {
	Name    string    `json:"name"`
	Version string    `json:"version,omitempty"`
	ID      ReleaseID `json:"id,omitzero"`
}

// ParseRelease parses "name@version", or "name" alone, validating both
// parts; the result carries no id.
func ParseRelease(s string) (Release, error) {
	name, version, hasVersion := strings.Cut(s, "@")
	if err := ValidateName(name); err != nil {
		return Release{}, err
	}
	if hasVersion {
		if _, err := ParseVersion(version); err != nil {
			return Release{}, err
		}
	}
	return Release{Name: name, Version: version}, nil
}

// String returns "name@version" ("name" without a version, "none" for the
// zero Release).
func (r Release) String() string {
	switch {
	case r.IsZero():
		return "none"
	case r.Version == "":
		return r.Name
	}
	return r.Name + "@" + r.Version
}

// IsZero reports whether r names no release.
func (r Release) IsZero() bool { return r == Release{} }

// Matches reports whether r and o name the same release: the same name
// and version and, when both know it, the same id. A release learnt from
// gossip (no id) matches the one the signed metadata lists under its name
// and version.
func (r Release) Matches(o Release) bool {
	if r.Name != o.Name || r.Version != o.Version {
		return false
	}
	var zero ReleaseID
	return r.ID == zero || o.ID == zero || r.ID == o.ID
}

// WithoutID returns r without its id: the name and version alone, as
// gossip carries them.
func (r Release) WithoutID() Release {
	r.ID = ReleaseID{}
	return r
}
