// Package rootfs gives tests real Debian root filesystems, built from
// Debian's packages and cached between runs, and an exact listing of a
// tree to compare before and after.
//
// Nouns:
//   - A Spec names a tree: mmdebstrap's minbase variant of a Debian
//     stable release (Suite) plus packages (Include), each "name" or
//     "name=version". Bookworm is Debian 12 with python3-minimal, curl,
//     openssl, iputils-ping and libcap2-bin: about 10,000 entries and
//     190 MiB of regular files.
//   - Build(t, spec) returns a fresh copy of the tree of spec in a
//     directory of t.TempDir(). The tree is built once, with
//     "mmdebstrap --mode=root --variant=minbase", and kept in the cache;
//     every later Build extracts the cached tarball. The copy is checked
//     against the listing of the tree as it was built, so it keeps every
//     owner (numeric), mode (setuid, setgid and sticky bits included),
//     xattr (security.capability included), ACL, hard link, device and
//     nanosecond mtime.
//   - A Series is a base tree and real Debian updates applied to it one
//     after another, for measuring deltas between releases of a tree:
//     tree 0 is the base and tree n is tree n-1 after Steps[n-1], a set of
//     .debs (one source package at one newer version, fetched with
//     "apt-get download name=version") installed by the tree's own dpkg,
//     chrooted, as an update leaves a tree (dpkg's database and log move
//     with it). UpdateSeries resolves the series of UpdateGroups (libssl3
//     and openssl, curl and libcurl4, python3.11-minimal and
//     libpython3.11-minimal) from the versions the mirrors publish now:
//     the base has the oldest version of each group, and the steps move
//     one group at a time to its next version, the groups taking turns.
//     On 2026-12-07 that was: base libssl3/openssl 3.0.17-1~deb12u2,
//     curl/libcurl4 7.88.1-10+deb12u5, python3.11 3.11.2-6+deb12u8; then
//     openssl 3.0.20-1~deb12u2; curl 7.88.1-10+deb12u15; python3.11
//     3.11.2-6+deb12u9; openssl 3.0.22-1~deb12u2. Series.Tree(t, n)
//     returns a fresh copy of tree n, each tree cached like a Spec's, and
//     Series.Listing(t, n) the listing of tree n as it was built, without
//     copying it out.
//   - List(root) is the listing of a tree: one Entry per path, "." for the
//     root, sorted by path, with the type, the 07777 mode bits, owner,
//     symlink target, xattrs, hard-link group, device numbers, size,
//     sha256 and mtime. Text and Entry.String write it as text, and Diff
//     describes the first differences between two listings, leaving out
//     the fields an Ignore names (owners, setuid bits, mtimes, xattrs) for
//     comparisons that cannot keep them.
//
// Why versions are resolved, not pinned: deb.debian.org keeps only the
// newest version of a package in each suite (the release, -updates,
// -security), so a pinned version disappears with Debian's next update.
// A resolved series is kept in the cache for a week, and for longer when
// the mirrors cannot be reached, so the series, and the trees cached for
// it, stay the same between Debian's updates.
//
// What the packages do not make: addExtras adds var/lib/meshcast-rootfs/
// with a fifo, a block device (7,7) and a file owned by 1000:1000 with a
// user.* xattr, and a user.* xattr on usr/bin/ping. The packages make
// everything else: ping's cap_net_raw (iputils-ping's postinst sets it
// with libcap2-bin's setcap; addExtras sets it only if a postinst did
// not, and says so), the setuid and setgid binaries of login, passwd and
// mount, the perl hard links, /dev's character devices, and the files of
// group shadow, utmp, mail and staff. No tree has a socket: tar cannot
// keep one.
//
// The cache is $MESHCAST_ROOTFS_CACHE, or meshcast/rootfs in the user's
// cache directory ($XDG_CACHE_HOME, else ~/.cache). It holds a
// zstd-compressed POSIX tarball and a record (JSON: what the tree is, its
// listing) per tree, the resolved series, and apt's own state: the
// package lists of the suite, independent of the host's sources. A tree
// not used for 30 days is removed; removing the directory is always safe.
// An flock serializes builds between test processes.
//
// When a tree cannot be had, Build, NewSeries and Series.Tree skip the
// test and say why and how to enable it: not root (owners, devices and
// capabilities need root: run the tests as root); not Debian (no dpkg);
// mmdebstrap missing and apt-get unable to install it (install
// mmdebstrap, as .ci/run does); the Debian mirror out of reach (give the
// tests network access to deb.debian.org, or a cache that has the
// trees); -short with the tree not cached. Anything else that goes wrong
// fails the test.
//
// Network: only deb.debian.org (the release, -updates and
// debian-security), through apt and mmdebstrap, and only when a tree or
// a week-old series is not in the cache; the trees' sources.list names
// the same three.
//
// rootfs is test support: production code must not import it.
package rootfs
