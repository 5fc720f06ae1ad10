package proctest

import "syscall"

// SysProcAttr makes the kernel kill a child when the test process dies
// without stopping it, such as on a test timeout.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
