package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

// Role says what a member runs: `meshcast node` or `meshcast seeder`.
type Role uint8

const (
	RoleNode   Role = 0 // a gateway: attests, fetches, activates
	RoleSeeder Role = 1 // a site server: everything a node does, plus Raft
)

var roleNames = [...]string{RoleNode: "node", RoleSeeder: "seeder"}

// String returns "node" or "seeder" ("role(N)" for an unknown value).
func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole parses the String form of a role.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames {
		if n == s {
			return Role(i), nil
		}
	}
	return 0, fmt.Errorf("unknown role %q (want %s)", s, strings.Join(roleNames[:], ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (r Role) MarshalText() ([]byte, error) {
	if int(r) >= len(roleNames) {
		return nil, fmt.Errorf("unknown role %d", uint8(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err == nil {
		*r = v
	}
	return err
}

// Values of Meta.Health.
const (
	HealthUnknown   uint8 = 0
	HealthHealthy   uint8 = 1
	HealthUnhealthy uint8 = 2
)

// Meta is a member's status as the site sees it: carried in memberlist's
// NodeMeta, so every member learns every other member's status through
// gossip. Every Meta that Encode accepts fits in MaxMetaSize bytes.
type Meta struct {
	ID       string          // the node's libp2p peer id, text form; at most MaxFieldLen bytes
	Role     Role            // RoleNode or RoleSeeder
	Platform string          // "linux/arm64"; at most MaxFieldLen bytes
	P2PPort  uint16          // the node's libp2p QUIC port (the IP is the gossip address)
	Running  content.Release // the release that runs, by name and version (no id); zero = none
	Staged   content.Release // the release being rolled out to this node, likewise
	Phase    deploy.Phase    // where the node stands with Staged
	Progress uint16          // per mille of the staged release held, 0..1000
	Health   uint8           // HealthUnknown, HealthHealthy or HealthUnhealthy
	Leader   bool            // this seeder is the Raft leader (set by the seeder)
	Term     uint64          // its Raft term when Leader
}

const (
	// MaxMetaSize is memberlist's limit on NodeMeta (memberlist.MetaMaxSize).
	MaxMetaSize = 512
	// MaxFieldLen bounds each text field of Meta (ID, Platform and the
	// names and versions of Running and Staged), so that every valid Meta
	// fits in MaxMetaSize with room for later fields: at most 409 bytes.
	MaxFieldLen = 64
	// MaxProgress is Meta.Progress of a node that holds all of its staged
	// release.
	MaxProgress = 1000

	// metaVersion is the encoding Encode writes and DecodeMeta reads.
	metaVersion = 1
	// metaFixedLen is the fixed part of encoding 1: version, flags, role,
	// phase, health, progress (2), port (2).
	metaFixedLen = 9
)

// Flag bits of encoding 1. flagLeaving is not a Meta field: Gossip.Leave sets
// it so that the others report the member's departure as a leave, not a
// failure.
const (
	flagLeader  = 1 << 0
	flagLeaving = 1 << 1
	knownFlags  = flagLeader | flagLeaving
)

var (
	// ErrBadMeta is wrapped by every error about a Meta that cannot be
	// encoded or bytes that are not a valid encoding; the message names
	// the field and what was wrong with it.
	ErrBadMeta = errors.New("bad node meta")
	// ErrMetaVersion is wrapped when DecodeMeta meets an encoding version
	// it does not know: a member running a newer meshcast.
	ErrMetaVersion = errors.New("unsupported node meta version")
)

// Encode returns the compact binary form of m (encoding version 1), for
// memberlist's NodeMeta. It fails, wrapping ErrBadMeta, if a field is out of
// range: an unknown role or phase, Progress above 1000, Health above 2, a
// text field longer than MaxFieldLen bytes or not UTF-8, a release with
// only one of name and version, or with an id (gossip carries releases by
// name and version; see content.Release.WithoutID).
//
// Encoding 1, all integers big-endian:
//
//	version  1 byte   = 1
//	flags    1 byte   bit 0 Leader, bit 1 leaving (set by Leave); others 0
//	role     1 byte
//	phase    1 byte
//	health   1 byte
//	progress 2 bytes
//	p2p port 2 bytes
//	term     uvarint, minimal
//	ID, Platform, Running.Name, Running.Version, Staged.Name, Staged.Version:
//	         each a length byte (≤ 64) and that many bytes of UTF-8
//
// Nothing follows. A decoder of version 1 refuses anything else, so a
// change of layout or of the meaning of a value needs a new version.
func (m Meta) Encode() ([]byte, error) { return m.encode(false) }

func (m Meta) encode(leaving bool) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	var flags byte
	if m.Leader {
		flags |= flagLeader
	}
	if leaving {
		flags |= flagLeaving
	}
	b := make([]byte, 0, metaFixedLen+binary.MaxVarintLen64+6+len(m.ID)+len(m.Platform)+
		len(m.Running.Name)+len(m.Running.Version)+len(m.Staged.Name)+len(m.Staged.Version))
	b = append(b, metaVersion, flags, byte(m.Role), byte(m.Phase), m.Health)
	b = binary.BigEndian.AppendUint16(b, m.Progress)
	b = binary.BigEndian.AppendUint16(b, m.P2PPort)
	b = binary.AppendUvarint(b, m.Term)
	for _, s := range [...]string{m.ID, m.Platform, m.Running.Name, m.Running.Version, m.Staged.Name, m.Staged.Version} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	if len(b) > MaxMetaSize { // cannot happen with the limits above; kept as the contract
		return nil, fmt.Errorf("%w: encodes to %d bytes, memberlist allows %d", ErrBadMeta, len(b), MaxMetaSize)
	}
	return b, nil
}

// withProgress returns m with Progress p.
func (m Meta) withProgress(p uint16) Meta {
	m.Progress = p
	return m
}

// validate checks every field against what encoding 1 can carry.
func (m Meta) validate() error {
	if int(m.Role) >= len(roleNames) {
		return fmt.Errorf("%w: role %d unknown (want 0 node or 1 seeder)", ErrBadMeta, m.Role)
	}
	if !m.Phase.Known() {
		return fmt.Errorf("%w: phase %d unknown (want 0..%d)", ErrBadMeta, m.Phase, deploy.PhaseRolledBack)
	}
	if m.Health > HealthUnhealthy {
		return fmt.Errorf("%w: health %d unknown (want 0 unknown, 1 healthy or 2 unhealthy)", ErrBadMeta, m.Health)
	}
	if m.Progress > MaxProgress {
		return fmt.Errorf("%w: progress %d above %d per mille", ErrBadMeta, m.Progress, MaxProgress)
	}
	for _, f := range m.textFields() {
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
	}
	for _, r := range [...]struct {
		name string
		ref  content.Release
	}{{"running", m.Running}, {"staged", m.Staged}} {
		if (r.ref.Name == "") != (r.ref.Version == "") {
			return fmt.Errorf("%w: %s release %q@%q: set both name and version, or neither", ErrBadMeta, r.name, r.ref.Name, r.ref.Version)
		}
		if r.ref.ID != (content.ReleaseID{}) {
			return fmt.Errorf("%w: %s release %s carries an id; gossip carries name and version only", ErrBadMeta, r.name, r.ref)
		}
	}
	return nil
}

type textField struct{ name, v string }

func (m Meta) textFields() [6]textField {
	return [...]textField{
		{"id", m.ID}, {"platform", m.Platform},
		{"running name", m.Running.Name}, {"running version", m.Running.Version},
		{"staged name", m.Staged.Name}, {"staged version", m.Staged.Version},
	}
}

func checkText(name, s string) error {
	if len(s) > MaxFieldLen {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrBadMeta, name, len(s), MaxFieldLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q is not UTF-8", ErrBadMeta, name, s)
	}
	return nil
}

// DecodeMeta parses what Encode wrote. It never panics; bad input gets an
// error wrapping ErrBadMeta that names the field and what was wrong with it
// (or ErrMetaVersion for a version other than 1), and the decoded Meta is
// then zero. Every input it accepts re-encodes to the same bytes.
func DecodeMeta(b []byte) (Meta, error) {
	m, _, err := decodeMeta(b)
	return m, err
}

// decodeMeta is DecodeMeta that also reports the leaving flag.
func decodeMeta(b []byte) (m Meta, leaving bool, err error) {
	if len(b) == 0 {
		return m, false, fmt.Errorf("%w: empty", ErrBadMeta)
	}
	if len(b) > MaxMetaSize {
		return m, false, fmt.Errorf("%w: %d bytes, limit %d", ErrBadMeta, len(b), MaxMetaSize)
	}
	if b[0] != metaVersion {
		if b[0] > metaVersion {
			return m, false, fmt.Errorf("%w %d (this build reads version %d; is the member running a newer meshcast?)", ErrMetaVersion, b[0], metaVersion)
		}
		return m, false, fmt.Errorf("%w %d (this build reads version %d)", ErrMetaVersion, b[0], metaVersion)
	}
	if len(b) < metaFixedLen {
		return m, false, fmt.Errorf("%w: truncated: %d bytes, the fixed part of version 1 is %d", ErrBadMeta, len(b), metaFixedLen)
	}
	flags := b[1]
	if flags&^knownFlags != 0 {
		return m, false, fmt.Errorf("%w: unknown flag bits 0x%02x", ErrBadMeta, flags&^knownFlags)
	}
	m.Leader = flags&flagLeader != 0
	leaving = flags&flagLeaving != 0
	m.Role = Role(b[2])
	m.Phase = deploy.Phase(b[3])
	m.Health = b[4]
	m.Progress = binary.BigEndian.Uint16(b[5:7])
	m.P2PPort = binary.BigEndian.Uint16(b[7:9])
	rest := b[metaFixedLen:]
	term, n := binary.Uvarint(rest)
	switch {
	case n == 0:
		return Meta{}, false, fmt.Errorf("%w: truncated in term", ErrBadMeta)
	case n < 0:
		return Meta{}, false, fmt.Errorf("%w: term overflows 64 bits", ErrBadMeta)
	case n != uvarintLen(term):
		return Meta{}, false, fmt.Errorf("%w: term %d is not minimally encoded (%d bytes)", ErrBadMeta, term, n)
	}
	m.Term = term
	rest = rest[n:]
	fields := [...]*string{&m.ID, &m.Platform, &m.Running.Name, &m.Running.Version, &m.Staged.Name, &m.Staged.Version}
	names := m.textFields()
	for i, p := range fields {
		name := names[i].name
		if len(rest) == 0 {
			return Meta{}, false, fmt.Errorf("%w: truncated before %s", ErrBadMeta, name)
		}
		l := int(rest[0])
		if l > MaxFieldLen {
			return Meta{}, false, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrBadMeta, name, l, MaxFieldLen)
		}
		if len(rest)-1 < l {
			return Meta{}, false, fmt.Errorf("%w: truncated in %s (%d of %d bytes)", ErrBadMeta, name, len(rest)-1, l)
		}
		*p = string(rest[1 : 1+l])
		rest = rest[1+l:]
	}
	if len(rest) != 0 {
		return Meta{}, false, fmt.Errorf("%w: %d trailing bytes after the last field", ErrBadMeta, len(rest))
	}
	if err := m.validate(); err != nil {
		return Meta{}, false, err
	}
	return m, leaving, nil
}

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], v)
}
