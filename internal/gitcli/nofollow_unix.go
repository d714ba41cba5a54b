//go:build unix

package gitcli

import "syscall"

// noFollow refuses to open a symbolic link as the last path element.
const noFollow = syscall.O_NOFOLLOW
