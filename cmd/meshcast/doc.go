// Command meshcast publishes signed releases to a CDN origin and delivers
// them to edge sites. See the README and docs/DESIGN.md.
//
// Each subcommand parses its flags and delegates to the packages that own
// the work (content/origin, seeder/cdn); nothing here is logic a test needs.
package main
