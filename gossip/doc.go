// Package gossip is a site's membership: who is in the site, at which
// address, in what state, over hashicorp/memberlist (SWIM with Lifeguard).
// It carries no chunk data and decides nothing: it reports.
//
// # Nouns
//
//   - Member: one node or seeder of the site, named by its libp2p peer id
//     (Config.Name), reached for gossip at Addr:Port and for libp2p at
//     Addr:Meta.P2PPort.
//   - Meta: a member's status (role, platform, running and staged release,
//     rollout phase, progress, health, Raft leadership), carried in
//     memberlist's NodeMeta: every member learns every member's status
//     through gossip. Encoded compactly (see Meta.Encode), version byte
//     first.
//   - Event: a member joined, left, failed, or changed its Meta.
//   - Broadcast: a small message (≤ 1 KiB) gossiped to every member.
//   - Profile: named timers, "lan" or "test" (below).
//   - Keyring: the AES keys gossip is encrypted with; Keys[0] encrypts.
//
// # Guarantees
//
//   - Every Meta that Encode accepts fits in memberlist's 512 bytes (at most
//     409), so SetMeta never fails for size. DecodeMeta never panics (it is
//     fuzzed); bad bytes get an error wrapping ErrBadMeta that names the
//     field, a version other than 1 gets ErrMetaVersion. Every accepted
//     encoding is canonical. The bytes of encoding 1 are pinned by
//     testdata/meta_v1.golden: a change of layout needs version 2.
//   - Gossip is encrypted (AES-GCM, memberlist's keyring) unless
//     Config.Insecure; a packet or stream that does not decrypt with an
//     installed key, or does not parse, is dropped and logged (Warn, with
//     the sender's address). A member without the key cannot join.
//   - memberlist's callbacks never block (delegate.go states the contracts):
//     events and broadcasts wait for their reader in bounded queues;
//     Events documents what is dropped when nobody reads.
//   - Events come in memberlist's order. A departure is EventLeave if the
//     member called Leave, EventFail if it stopped answering.
//   - A crash is reported as EventFail by every other member, and a SetMeta
//     reaches every member as EventUpdate, within the times below.
//   - A broadcast is delivered once by each member that is alive while it
//     spreads, except with negligible probability (see broadcast.go).
//   - Close stops every goroutine of the package and waits for it; nothing
//     is logged after Close returns.
//
// # Profiles
//
// The timers are memberlist's; "lan" is memberlist's DefaultLANConfig.
// Detection and spread times were measured in a site of 10 on loopback
// (TestProfileTimings; 2 cores) and are documented as bounds for sites of
// up to 10 members.
//
//	                          lan                 test
//	probe interval / timeout  1 s / 0.5 s         200 ms / 100 ms
//	suspicion mult. (max ×)   4 (×6)              3 (×3)
//	gossip interval, fan-out  200 ms, 3           50 ms, 3
//	push/pull interval        30 s                2 s
//	TCP timeout               10 s                1 s
//	default BindPort          7946                a free port
//	crash seen by all         6.0–7.0 s, ≤ 8 s    0.9–1.2 s, ≤ 1.5 s
//	SetMeta seen by all       0.2–0.4 s, ≤ 1 s    0.05–0.1 s, ≤ 0.5 s
//
// How detection follows from the timers: each member probes one other per
// probe interval, so a crashed member is probed within about one interval;
// a probe unanswered within the probe timeout, and then by indirect probes
// through 3 others until the interval ends, makes it suspect. A suspect is
// declared dead after the suspicion timeout: min = multiplier × max(1,
// log10 N) × probe interval (4 s for lan, 0.6 s for test, up to 10
// members). memberlist starts that timer at max × min and shrinks it to min
// as (multiplier − 2) other members confirm the suspicion by their own
// failed probes: 2 for lan, which in a site of 10 takes a few probe
// intervals (hence 6–7 s), 1 for test (about 1 s). Every member runs its own
// timer from the suspicion it hears of, so all report the crash within a
// few milliseconds of each other. Larger sites take longer (log10 N): lan's
// minimum suspicion is 8 s at 100 members and 12 s at 1000. The test
// profile may still suspect a live member on an overloaded machine; that
// member refutes and is reported with EventJoin again. (DEPENDENCIES.md's
// profile, the same with multiplier 2, detects in ~0.8 s, but it declares a
// member dead on one failed probe after 0.4 s, and did so to live members
// during process stalls in this package's -race suite; 3 waits for a second
// member's opinion and gives the suspect 0.6 s to refute, for ~0.3 s more.)
//
// A SetMeta goes out at once, or after the update before it, at most one
// gossip interval later (bursts collapse into the latest Meta); it then
// reaches everyone in 2 to 3 gossip intervals, and goes out once more a
// little later (1 s for lan, 250 ms for test) for a member that missed
// every copy, which memberlist's gossip rarely but really does. A change
// of Progress alone is pushed at most once per members × 400 ms (lan) or
// × 50 ms (test): 4 s in a lan site of 10, 400 s in one of 1000. Each
// update costs every member about RetransmitMult × ⌈log10(N+1)⌉ sends of
// its gossip bandwidth (a few hundred messages per second at lan timers),
// so a site carries a few updates per second in all, whatever its size:
// per-node progress at a finer grain belongs on another channel (the
// node's API, or libp2p).
//
// # Rotating the gossip key
//
// memberlist's keyring is local to each member: rotation is a procedure
// run across the site by whoever distributes keys. Today that is the
// operator, who gives every member the site's key file (meshcast's
// --gossip-key-file); nothing in meshcast runs the procedure below yet. In
// the design (docs/DESIGN.md, "Security model") the Raft leader hands the
// key out on admission, over the admitted peer's libp2p connection, never
// by gossip: a revoked member still holds the old key and would read it.
// Each step must be done on every member before the next starts; the
// caller learns that from each member's answer (its Keys fingerprints).
//
//  1. InstallKey(new) on every member. Each now decrypts both keys and still
//     encrypts with the old one.
//  2. UseKey(new) on every member. Members switch one by one; since all hold
//     both keys, every packet still decrypts everywhere.
//  3. RemoveKey(old) on every member. From now on, what is encrypted with
//     the old key (a revoked member) is refused.
//
// Skipping ahead breaks the site: a member that uses a key that another has
// not installed is unreadable to it and is soon reported as failed. A member
// that missed the rotation (it was down) cannot join again until it gets the
// new key. InstallKey and RemoveKey are idempotent, so a step can be
// retried. Rotate with two keys at a time: memberlist's RemoveKey shifts the
// keyring's slice in place while its packet handlers may read it, which is
// harmless only when the removed key is the last one, as it is in this
// procedure (old, new → new, old → new).
//
// # memberlist's surprises, and what this package does about them
//
//   - It reports a member's departure through NotifyLeave without saying
//     whether it left or died (Node.State is never set; nodeState shadows
//     it): Leave sets a leaving flag in the member's NodeMeta, pushed before
//     memberlist's leave message. If the flag is overtaken (rare) the leave
//     is reported as a failure.
//   - It does not tell its users which members it suspects: Members lists
//     suspects as alive.
//   - Its TransmitLimitedQueue loses messages of equal length
//     (hashicorp/memberlist#263): user broadcasts use transmitQueue. Its own
//     membership messages go through the same queue; memberlist repairs
//     those by push/pull.
//   - A NodeMeta update now and then misses a member entirely (probability
//     about e^-k with k = RetransmitMult × ⌈log10(N+1)⌉ copies per member,
//     k = 4 below 10 members), which then learns it at the next push/pull
//     (30 s for lan): SetMeta pushes a second time.
//   - A broadcast queued once reaches about 6 of 9 others in a site of 10:
//     receivers re-broadcast, with a higher retransmit multiplier.
//   - Members() returns pointers into its own table, which it changes
//     under its lock: this package keeps its own table from the events.
//   - Keyring.AddKey and UseKey keep the caller's slice: keys are copied
//     before they are handed over.
//   - It panics on Leave after Shutdown, and UpdateNode after Leave would
//     announce the member alive again: both are serialized with Close.
//   - Shutdown does not wait for its goroutines, and its suspicion timers
//     may still call back: the delegates drop what arrives after Close, and
//     the logger is gated.
//   - With AdvertiseAddr set, an AdvertisePort of 0 is advertised as is;
//     without it, AdvertisePort is ignored: this package defaults the
//     advertised port to the bound one.
//   - It logs to stderr unless given a logger, at levels in the text:
//     its lines go to the injected slog.Logger (see logs.go).
package gossip
