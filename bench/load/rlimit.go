//go:build linux

package load

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises this process's soft limit on open files to its
// hard limit, which children started afterwards inherit, and returns the
// limit now in force. An unprivileged process cannot go past the hard
// limit, so that is the most a load tool can give itself and its children.
func RaiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("read the open files limit: %w", err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, fmt.Errorf("raise the open files limit to %d: %w", l.Max, err)
		}
	}
	return l.Cur, nil
}
