// Package gossip will own site membership over memberlist: encrypted gossip,
// each node's status in its NodeMeta, broadcasts and membership events. It
// will carry no chunk data and decide nothing alone.
//
// Not built yet: see issues [2/6]–[6/6] and docs/DESIGN.md.
package gossip
