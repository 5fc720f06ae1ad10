package nodetest

import "syscall"

// sysProcAttr makes the kernel stop node if the test process dies without
// waiting for it, such as on a test timeout.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
