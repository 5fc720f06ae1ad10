//go:build !linux

package proctest

import "syscall"

// SysProcAttr returns nil: only Linux can stop a child when its parent
// dies.
func SysProcAttr() *syscall.SysProcAttr {
	return nil
}
