// Package seeder owns what only a site's seeders do: Raft (a transport over
// the streams the mesh hands it, the raft-wal store, the FSM of site
// decisions, snapshots) and the leader loop that watches the CDN, stages
// each new release through Raft and fetches what the site lacks (issue
// [6/10] adds opening and gating waves). It talks no QUIC itself: it
// declares the small interfaces it needs (Streams for Raft; Consensus,
// Origin, Members, Follower, Swarm and ChunkStore for the leader) and mesh
// wires them in. The CDN client is package seeder/cdn, the development
// origin seeder/cdn/devserver.
//
// Nouns:
//   - Command: one site decision as stored in the Raft log: a format byte, a
//     kind byte and a JSON body, at most MaxCommandSize bytes
//     (EncodeCommand, DecodeCommand). CmdStageRelease (a StageRelease) is
//     the only kind so far.
//   - FSM: the state machine of site decisions (SiteState: the target
//     release; issues [6/10] and [7/10] add the rollout and the admitted
//     set). Never per-node
//     chatter, which travels by gossip.
//   - Raft: one seeder's Raft node (NewRaft), owning hashicorp/raft, the
//     FSM's stores (a raft-wal log and stable store in Dir/wal, file
//     snapshots in Dir/snapshots) and the network transport over Streams.
//     The leader is the site's active seeder.
//   - Streams: the byte streams between seeders, named by server id (the
//     libp2p peer id); the mesh provides them over libp2p, tests over pipes.
//   - RaftConfig: Dir, ID, Bootstrap and the timeouts; LANRaftConfig and
//     TestRaftConfig are the profiles.
//   - Leader: the leader loop (NewLeader, Run). For each term this seeder
//     leads, it stages the highest signed version of the site's release
//     (a CmdStageRelease carrying the term), adds the seeders gossip lists
//     alive as voters, and spreads the staged swarm: it fetches from the
//     origin only the chunks no member holds and pushes each to one
//     member, at most a window ahead of the site.
//
// Guarantees:
//   - FSM.Apply is deterministic and does no I/O: replicas that apply the
//     same log hold the same state and give the same responses. It never
//     panics on bad input: undecodable bytes get an error wrapping
//     ErrBadCommand as their response, a refused decision one wrapping
//     ErrRefused; neither changes the target. DecodeCommand is fuzzed.
//   - Every command carries the term in which its leader decided it, and the
//     FSM refuses it unless that is the term it was appended in, so a
//     decision made from a stale view never applies (FSM explains why Raft
//     alone does not give this). The target records its term, so actions
//     taken for it can be fenced too.
//   - The target's version never goes down; staging the target again is a
//     no-op.
//   - Snapshots hold the whole state; Restore replaces it or fails and
//     leaves it. A restarted seeder recovers from its snapshot and its WAL
//     and catches up from the leader.
//   - Leadership changes reach LeaderCh without ever blocking raft.
//   - The Leader does nothing for a term it no longer leads: what it runs
//     for a term stops, and is waited for, when that leadership ends or is
//     lost and won back in a new term; Run owns every goroutine it starts.
//   - Raft.Close stops every goroutine Raft started, hashicorp/raft's and
//     its transport's included, and closes the stores and the Streams.
//   - One Raft node per state directory: a second gets an error at once.
//   - hashicorp/raft and raft-wal log through the slog.Logger given to
//     NewRaft, their INFO at DEBUG (see hclogger).
//
// Membership: the first seeder starts with Bootstrap and becomes a cluster
// of one; the Leader adds the others as voters when gossip lists them
// alive; an operator removes a seeder that is gone for good
// (Leader.RemoveSeeder, `meshcast seeder remove`), since a dead voter still
// counts toward the quorum. A seeder gossip lists alive is not removed: the
// leader would add it back.
package seeder
