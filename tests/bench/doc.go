// Command bench runs meshcast's benchmark scenarios (tests/scenario) and
// prints a table, or one JSON object with --json. Each scenario measures a
// baseline in the same run and reports ratios against it, since the
// machines it runs on are shared and noisy: publish and delta against the
// zstd CLI, site against a direct HTTP fetch, a raw libp2p stream and
// boxo's bitswap (tests/baseline).
//
//	go run ./tests/bench publish [--size 1G] [--runs 3] [--json]
//	go run ./tests/bench delta [--files 3000] [--bytes 300M] [--json]
//	go run ./tests/bench site [--nodes 10] [--seeders 1] [--size 256M] [--wan 100M] [--lan 0] [--json]
package main
