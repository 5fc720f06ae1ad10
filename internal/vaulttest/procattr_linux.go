package vaulttest

import "syscall"

// sysProcAttr makes the kernel stop Vault if the test process dies without
// running its cleanups, such as on a test timeout.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
