// Command meshcast publishes signed releases to a CDN origin and delivers
// them to edge sites; one binary holds every role. See the README and
// docs/DESIGN.md.
//
// Subcommands, and the packages that do their work:
//   - keys, repo, publish: the origin side (content/origin).
//   - cdn serve: the development origin (seeder/cdn/devserver).
//   - fetch: a verified direct download of a release (seeder/cdn).
//   - node, seeder: the daemons, a mesh.Node that runs until SIGINT or
//     SIGTERM and then says goodbye to its site; seeder remove asks the
//     leader, through its API, to drop a dead seeder.
//   - status: a node and its site, read through its API (mesh/api);
//     rollout: the operator's pause, resume and abort of the site's
//     rollout, carried to the leader.
//   - demo: the whole job on loopback: an origin, a capped CDN, a site of
//     seeders and nodes (mesh.Node), three releases published, spread and
//     activated in waves, the third rolled back at its canary.
//
// Each subcommand parses its flags (the daemons also a config file) and
// delegates to those packages; nothing here is logic a test needs.
package main
