//go:build !unix

package tests

import "errors"

func lockedWorkTree(base string) (*workTree, error) {
	return nil, errors.New("stable work dirs need flock")
}
