// Package attesttest gives tests a second, independent TPM: swtpm, the
// Debian package, run on loopback and reached through attest.OpenTCP.
//
// Nouns: StartSwtpm.
//
// Guarantees: the swtpm it starts listens before StartSwtpm returns, keeps
// its state in the test's temporary directory, and is killed and reaped
// when the test ends; where swtpm is not installed, the test is skipped
// with a message saying how to install it. Only tests import it.
package attesttest
