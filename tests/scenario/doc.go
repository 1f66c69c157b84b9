// Package scenario holds the measured scenarios that both the benchmark
// command (tests/bench) and the tests run: the same code prints figures in
// one and asserts bounds in the other. Everything runs on loopback in
// directories the caller owns.
package scenario
