// Package deploy owns a node's rollout: what it stages, and (issue [6/10])
// when and how it activates it.
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
//
// Guarantees:
//   - The Follower stages only a release whose signed manifest verified
//     and names it, and, when the site names an id, only that id.
//   - Its state has one owner, the goroutine of Run; State hands out a
//     copy and a channel closed at the next change.
//
// The local activator (Activator, activate.go) switches a node between
// the installed releases of one name in <state>/releases/<name>: Install
// assembles a release beside the running one (its unchanged files
// hard-linked, refused up front when the disk lacks room), Activate
// switches the `current` symlink atomically, runs the operator's hooks
// (hooks.go, docs/HOOKS.md) and health checks for the rollout's soak, and
// rolls back by itself when they fail; Rollback goes back when the site
// decides. Guarantees: every step is in the activation journal
// (journal.go), durable before the next, so a node killed anywhere
// restarts on the old release or the new one, complete, never a mix, and
// OpenActivator finishes or undoes what was under way; nothing below the
// running version (but a site's rollback) or below the highest security
// floor seen is ever activated; a node that restarts more than MaxBoots
// times inside an activation rolls it back.//
// Not here yet; issue [6/10] adds them: the rollout state machine (pure
// and deterministic: plan waves, apply commands, gate on health; no I/O
// inside it) and the local activator (releases directory, atomic switch,
// hooks, health checks, rollback, crash recovery).
package deploy
