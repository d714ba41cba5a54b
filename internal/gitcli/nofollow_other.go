//go:build !unix

package gitcli

// noFollow: os.Root already refuses links that leave the root here.
const noFollow = 0
