//go:build !crashpoints

package main

import "github.com/meshcast/meshcast/mesh"

// crashOptions are the fault seams of a crashpoints build (see
// crash_crashpoints.go); a production build has none.
func crashOptions() []mesh.Option { return nil }
