// Package golden reads the golden files of the project's encodings: lines
// of "<case> <hex>", where empty lines and lines that start with # are
// comments. The gossip NodeMeta, the chunk exchange's frames and the peer
// file protocol's exchanges are pinned in such files (STYLE.md 16). Only
// tests import it.
package golden
