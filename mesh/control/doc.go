// Package control is the peer RPC for the site's decisions
// (/meshcast/control/1): any seeder answers what its Raft state says of
// the target and its rollout (a follower from its own FSM), so that a node
// that missed a broadcast catches up by asking; and it carries an
// operator's pause, resume or abort to the leader (a seeder that does not
// lead forwards it).
//
// Nouns:
//   - State: the site's target, the release it runs, the target's rollout
//     (deploy.Rollout), and the Raft index and term they were read at.
//   - Site: what a seeder serves (mesh wires its FSM and leader in).
//   - Seeders: a node's view of the site's decisions, asking the seeders
//     gossip lists.
//
// Guarantees:
//   - One request and one answer per stream, each a JSON object of bounded
//     size (MaxRequest, MaxAnswer), read with a deadline; a peer cannot
//     make either side allocate more.
//   - Seeders.State returns the freshest state (highest Raft index) among
//     the seeders that answered.
package control
