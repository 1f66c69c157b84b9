// Package treegen generates realistic, deterministic test data for the
// delta-efficiency and publish-throughput benchmarks: a Debian-like root
// filesystem tree (Generate), a package upgrade of such a tree (Upgrade), and a
// filesystem-image-like single file (Image).
//
// Nouns:
//   - A content model is how bytes are made: Text (a Zipf pseudo-language in
//     prose, changelog, config, source and record styles), Code (ELF-like
//     binaries whose .text is a stream of Zipf-distributed "instructions" with
//     displacements), Random (already-compressed assets) and Empty.
//   - A package is a group of related files (binary, library, docs, config,
//     translations, data) recorded in var/lib/dpkg/status and
//     var/lib/dpkg/info/<pkg>.list, exactly as dpkg does, so Upgrade can find
//     it again in any tree, including one Upgrade wrote.
//
// Guarantees:
//   - The same seed and options give byte-identical output on any machine: no
//     host file is read, no map order or floating-point library result reaches
//     the output, and the parallel writers seed every file from its path.
//   - Symlinks are relative and never leave the tree.
//   - Upgrade copies everything it does not report in its Change byte for byte;
//     the Change lists every regular file and symlink it added, removed or
//     modified, and never more than maxFiles of them.
//   - Image writes exactly the size asked for.
//
// Generation fills big buffers with a small inlined generator (wyrand) instead
// of math/rand/v2 because it draws tens of millions of values a second.
// treegen is test support: production code must not import it.
package treegen
