//go:build !linux

package devserver

import "net"

// clampMSS does nothing here: only Linux clamps a listener's segments.
func clampMSS(net.Listener, int) error { return nil }
