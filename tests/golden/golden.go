package golden

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// ReadHex reads a golden file of "<case> <hex>" lines into bytes by case,
// failing the test on a missing file, a bad line or a case named twice.
func ReadHex(t testing.TB, path string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	golden := map[string][]byte{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, h, ok := strings.Cut(line, " ")
		v, err := hex.DecodeString(h)
		if !ok || err != nil {
			t.Fatalf("%s: bad line %q", path, line)
		}
		if _, dup := golden[name]; dup {
			t.Fatalf("%s: %s twice", path, name)
		}
		golden[name] = v
	}
	return golden
}
