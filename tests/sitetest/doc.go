// Package sitetest runs a meshcast site on loopback for tests and
// benchmarks: an origin with a development CDN (its bandwidth cap is the
// WAN), seeders and nodes that are real mesh.Nodes with state dirs of
// their own, and byte counters everywhere. Scenarios read as a story:
//
//	site := sitetest.New(t, sitetest.Seeders(1), sitetest.Nodes(10))
//	site.Publish("1.0.0", tree)
//	site.WaitVerified("1.0.0", time.Minute)
//	site.Kill(site.Nodes()[3])
//
// and Check verifies the invariants every scenario ends with.
//
// Nouns:
//   - Site: the origin, the CDN and the members, all connected to each
//     other; Options (Seeders, Nodes, WAN, LAN, …) size and shape it.
//   - Member: one seeder or node. Kill stops it as SIGTERM would (goodbye
//     to the site), Crash as kill -9 would, Restart starts it again on its
//     state dir.
//   - Partition and Heal: cut and restore every link, libp2p and gossip,
//     between one side of the site and the rest.
//   - Rogue: a peer that claims every chunk and serves each corrupted.
//
// Guarantees: Check fails the test unless every live member holds every
// chunk of the version and every chunk any live member stored verifies
// against its id. Everything a site starts (members, CDN, rogues) is
// stopped, and waited for, at its test's cleanup; Close stops the members
// and the CDN sooner. Production code must not import sitetest.
package sitetest
