// Package deploy owns a node's rollout: what it stages, and when and how
// it activates it.
//
// Nouns:
//   - Phase: where a member stands with the release it stages (idle,
//     fetching, verified, and the activation phases); gossip carries it.
//   - Follower: keeps a node on the release its site stages. It learns the
//     target from a Site (the Raft FSM on a seeder, the leader's gossip on
//     a node), resolves it in freshly verified TUF metadata (content/tuf;
//     from the origin on the leading seeder, from peers elsewhere), and
//     joins the swarm of the node's platform artifact through Swarms
//     (mesh/exchange, wired by mesh).
//   - Rollout: the site's rollout of its target, a value the Raft FSM
//     holds. PlanWaves splits the members that were alive and verified at
//     the start into waves (a canary first, in an order drawn from the
//     release id); Apply moves it on by Commands (start, gate, pause,
//     resume, abort); Next says which command the leader should propose,
//     from gossip's MemberViews and its clock; ActionFor says what a
//     member does (wait, activate, roll back).
//
// Guarantees:
//
//   - The Follower stages only a release whose signed manifest verified
//     and names it, and, when the site names an id, only that id.
//
//   - Its state has one owner, the goroutine of Run; State hands out a
//     copy and a channel closed at the next change.
//
//   - The rollout state machine is pure and deterministic: no clock, no
//     randomness, no I/O; times come in commands. Replicas that apply the
//     same commands reach equal states and errors, through JSON or not; a
//     refused command changes nothing. A wave opens only after the gate of
//     the one before it passed; after a failed gate no wave opens and
//     members that activated roll back, but never below the release's
//     security floor (with nothing to go back to, they stay).
//
//   - Activator: switches a node between the installed releases of one
//     name in <state>/releases/<name>. Install assembles a release beside
//     the running one (its unchanged files hard-linked, refused up front
//     when the disk lacks room); Activate switches the `current` symlink
//     atomically, runs the operator's hooks (hooks.go, docs/HOOKS.md) and
//     health checks for the rollout's soak, and rolls back by itself when
//     they fail; Rollback goes back when the site decides.
//
//   - Agent: a node's part of the rollout: it reads the site's Rollout
//     (from any seeder's Raft state, through a SiteRollout) and does what
//     ActionFor says of the node with the Activator.
//
// Guarantees of the activator: every step is in the activation journal
// (journal.go), durable before the next, so a node killed anywhere
// restarts on the old release or the new one, complete, never a mix, and
// OpenActivator finishes or undoes what was under way; nothing below the
// running version (but a site's rollback) or below the highest security
// floor seen is ever activated; a node that restarts more than MaxBoots
// times inside an activation rolls it back. The agent activates only a
// release its Follower verified, only when the site's rollout opened the
// node's wave, and never retries by itself a release it failed.
package deploy
