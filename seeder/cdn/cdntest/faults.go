package cdntest

import (
	"sync"

	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// Faults is a devserver.Faults for tests: Set arms one fault, for the
// requests of one URL path or of every path, a number of times or until
// it is replaced. The zero Faults injects nothing; it is safe for
// concurrent use.
type Faults struct {
	mu    sync.Mutex
	path  string // "" matches every path
	fault devserver.Fault
	times int // requests left; 0: every one
}

// Set makes the next times requests for path ("/packs/ab12….pack"; ""
// for every path but /metrics, which the server never faults) fail with
// fault; times 0 means every one until the next Set. Set("", Fault{}, 0)
// clears it. Every matching request counts, whatever its outcome.
func (f *Faults) Set(path string, fault devserver.Fault, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.path, f.fault, f.times = path, fault, times
}

// Fault implements devserver.Faults: it returns the armed fault for a
// request of urlPath, and counts it down.
func (f *Faults) Fault(urlPath string) devserver.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fault == (devserver.Fault{}) || (f.path != "" && f.path != urlPath) {
		return devserver.Fault{}
	}
	fault := f.fault
	if f.times > 0 {
		f.times--
		if f.times == 0 {
			f.fault = devserver.Fault{}
		}
	}
	return fault
}
