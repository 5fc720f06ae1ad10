//go:build !linux

package nodetest

import "syscall"

// sysProcAttr returns nil: only Linux can stop a child when its parent
// dies.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
